//! `nextToken` / `maxResults` paging over id lists.

use crate::error::ApiError;

/// Page size when the caller gives none (and the only one for operations without `maxResults`).
pub const DEFAULT_PAGE: usize = 100;

/// Returns one page of `items` and the token of the next page, if any.
///
/// The token is opaque to callers (hex of the offset, with a prefix so a foreign token is
/// rejected the way CodeBuild rejects an invalid one).
pub fn page<T: Clone>(
    items: &[T],
    next_token: Option<&str>,
    max_results: Option<i64>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let size = match max_results {
        None => DEFAULT_PAGE,
        Some(n @ 1..=100) => usize::try_from(n).unwrap_or(DEFAULT_PAGE),
        Some(n) => {
            return Err(ApiError::invalid_input(format!(
                "maxResults must be between 1 and 100, got {n}"
            )));
        }
    };
    let start = match next_token {
        None => 0,
        Some(token) => decode(token).ok_or_else(|| ApiError::invalid_input("Invalid nextToken"))?,
    };
    let start = start.min(items.len());
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| encode(end));
    Ok((items[start..end].to_vec(), next))
}

fn encode(offset: usize) -> String {
    format!("cbl-{}", hex::encode(offset.to_string()))
}

fn decode(token: &str) -> Option<usize> {
    let raw = hex::decode(token.strip_prefix("cbl-")?).ok()?;
    String::from_utf8(raw).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn pages_follow_each_other_and_end() {
        let items: Vec<u32> = (0..5).collect();
        let (a, t) = page(&items, None, Some(2)).unwrap();
        let (b, t) = page(&items, t.as_deref(), Some(2)).unwrap();
        let (c, t) = page(&items, t.as_deref(), Some(2)).unwrap();
        assert_eq!((a, b, c, t), (vec![0, 1], vec![2, 3], vec![4], None));
        assert!(page(&items, Some("junk"), None).is_err());
        assert!(page(&items, None, Some(101)).is_err());
    }
}
