//! Typed CodeBuild build and batch identifiers.
//!
//! CodeBuild names a build (and a batch) either by its id `project:uuid` or by its ARN
//! `arn:PARTITION:codebuild:REGION:ACCOUNT:build/project:uuid` (`build-batch/` for batches).
//! Both forms parse into the same typed value; the ARN form also keeps where the resource lives.

use std::fmt;
use std::marker::PhantomData;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid build or batch id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The input was empty.
    #[error("empty {kind} id")]
    Empty {
        /// `build` or `build-batch`.
        kind: &'static str,
    },
    /// Neither `project:uuid` nor an ARN.
    #[error("malformed {kind} id {input:?}: expected `project:uuid` or an ARN")]
    Malformed {
        /// `build` or `build-batch`.
        kind: &'static str,
        /// The rejected input.
        input: String,
    },
    /// The project name breaks CodeBuild's naming rule.
    #[error("invalid project name {0:?}")]
    InvalidProject(String),
    /// The part after the project is not a CodeBuild uuid.
    #[error("invalid uuid {0:?}")]
    InvalidUuid(String),
    /// An ARN of another service or resource type.
    #[error("ARN {input:?} is not a CodeBuild {kind} ARN")]
    WrongArn {
        /// `build` or `build-batch`.
        kind: &'static str,
        /// The rejected input.
        input: String,
    },
    /// Percent-decoding gave bytes that are not UTF-8.
    #[error("percent-encoded id is not UTF-8")]
    NotUtf8,
}

/// Where an ARN says a resource lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArnLocation {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub partition: String,
    /// e.g. `us-east-1`.
    pub region: String,
    /// The 12-digit account id.
    pub account: String,
}

/// The resource kind behind a typed id (sealed: builds and batches only).
pub trait ResourceKind: private::Sealed {
    /// The ARN resource type (`build` or `build-batch`).
    const ARN_RESOURCE: &'static str;
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::BuildKind {}
    impl Sealed for super::BatchKind {}
}

/// Marker for builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BuildKind;
/// Marker for build batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchKind;

impl ResourceKind for BuildKind {
    const ARN_RESOURCE: &'static str = "build";
}
impl ResourceKind for BatchKind {
    const ARN_RESOURCE: &'static str = "build-batch";
}

/// A typed CodeBuild resource id: project name + uuid, and the ARN location when known.
///
/// Equality and hashing include the location: an id parsed from an ARN and one parsed from
/// `project:uuid` differ. Compare [`ResourceId::id`] strings to match across forms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceId<K> {
    project: String,
    uuid: String,
    location: Option<ArnLocation>,
    kind: PhantomData<K>,
}

/// A build: `project:uuid` or `arn:...:build/project:uuid`.
pub type BuildId = ResourceId<BuildKind>;
/// A build batch: `project:uuid` or `arn:...:build-batch/project:uuid`.
pub type BatchId = ResourceId<BatchKind>;

/// Characters escaped when an id goes into one URL path segment or query value: everything but
/// unreserved characters, so `/` and `:` of an ARN cannot split the path.
const URL_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl<K: ResourceKind> ResourceId<K> {
    /// Builds an id from its parts, validating both.
    pub fn new(project: &str, uuid: &str) -> Result<Self, IdError> {
        validate_project(project)?;
        validate_uuid(uuid)?;
        Ok(Self {
            project: project.to_owned(),
            uuid: uuid.to_owned(),
            location: None,
            kind: PhantomData,
        })
    }

    /// Parses `project:uuid` or a full ARN.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        if input.is_empty() {
            return Err(IdError::Empty {
                kind: K::ARN_RESOURCE,
            });
        }
        if input.starts_with("arn:") {
            return Self::parse_arn(input);
        }
        let (project, uuid) = input.split_once(':').ok_or_else(|| IdError::Malformed {
            kind: K::ARN_RESOURCE,
            input: input.to_owned(),
        })?;
        Self::new(project, uuid)
    }

    /// Parses a URL path segment or query value: percent-decodes, then [`Self::parse`].
    pub fn parse_url_encoded(input: &str) -> Result<Self, IdError> {
        let decoded = percent_decode_str(input)
            .decode_utf8()
            .map_err(|_| IdError::NotUtf8)?;
        Self::parse(&decoded)
    }

    fn parse_arn(input: &str) -> Result<Self, IdError> {
        let wrong = || IdError::WrongArn {
            kind: K::ARN_RESOURCE,
            input: input.to_owned(),
        };
        // arn:partition:service:region:account:resource — the resource keeps its own colon.
        let mut parts = input.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some("codebuild"),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(wrong());
        };
        let (resource_type, id) = resource.split_once('/').ok_or_else(wrong)?;
        if resource_type != K::ARN_RESOURCE
            || partition.is_empty()
            || region.is_empty()
            || account.len() != 12
            || !account.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(wrong());
        }
        let (project, uuid) = id.split_once(':').ok_or_else(wrong)?;
        let mut parsed = Self::new(project, uuid)?;
        parsed.location = Some(ArnLocation {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
        });
        Ok(parsed)
    }

    /// The project name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The uuid part.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// Partition, region and account, when parsed from an ARN.
    pub fn location(&self) -> Option<&ArnLocation> {
        self.location.as_ref()
    }

    /// The `project:uuid` form CodeBuild's APIs take.
    pub fn id(&self) -> String {
        format!("{}:{}", self.project, self.uuid)
    }

    /// The ARN, when the location is known.
    pub fn arn(&self) -> Option<String> {
        self.location.as_ref().map(|loc| self.arn_in(loc))
    }

    /// The ARN of this id in the given location.
    pub fn arn_in(&self, location: &ArnLocation) -> String {
        format!(
            "arn:{}:codebuild:{}:{}:{}/{}:{}",
            location.partition,
            location.region,
            location.account,
            K::ARN_RESOURCE,
            self.project,
            self.uuid
        )
    }

    /// The same id with the given location (e.g. to address it by ARN).
    pub fn with_location(mut self, location: ArnLocation) -> Self {
        self.location = Some(location);
        self
    }

    /// The form it was parsed from: the ARN if known, else `project:uuid`.
    pub fn as_given(&self) -> String {
        self.arn().unwrap_or_else(|| self.id())
    }

    /// The ARN (or id) percent-encoded for one URL path segment or query value.
    pub fn url_encoded(&self) -> String {
        utf8_percent_encode(&self.as_given(), URL_SEGMENT).to_string()
    }
}

/// Displays `project:uuid`, the form CodeBuild's APIs take.
impl<K: ResourceKind> fmt::Display for ResourceId<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.project, self.uuid)
    }
}

impl<K: ResourceKind> std::str::FromStr for ResourceId<K> {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Serialises in the form it was parsed from, so events round-trip unchanged.
impl<K: ResourceKind> Serialize for ResourceId<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.as_given())
    }
}

impl<'de, K: ResourceKind> Deserialize<'de> for ResourceId<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Checks a CodeBuild project name: `[A-Za-z0-9][A-Za-z0-9_-]{1,254}`.
pub fn validate_project(project: &str) -> Result<(), IdError> {
    let bytes = project.as_bytes();
    let valid = (2..=255).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    if valid {
        Ok(())
    } else {
        Err(IdError::InvalidProject(project.to_owned()))
    }
}

/// A uuid in the 8-4-4-4-12 layout. Alphanumerics rather than hex only, because AWS's published
/// samples end their uuids in `EX` and they must stay parseable.
fn validate_uuid(uuid: &str) -> Result<(), IdError> {
    let valid = uuid.len() == 36
        && uuid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_alphanumeric(),
        });
    if valid {
        Ok(())
    } else {
        Err(IdError::InvalidUuid(uuid.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const UUID: &str = "8745a7a9-c340-456a-9166-edf953571bEX";
    const BUILD_ARN: &str = "arn:aws:codebuild:us-west-2:123456789012:build/my-sample-project:8745a7a9-c340-456a-9166-edf953571bEX";

    #[test]
    fn parses_project_uuid_form() {
        let id = BuildId::parse(&format!("my-sample-project:{UUID}")).unwrap();
        assert_eq!(id.project(), "my-sample-project");
        assert_eq!(id.uuid(), UUID);
        assert_eq!(id.location(), None);
        assert_eq!(id.to_string(), format!("my-sample-project:{UUID}"));
        assert_eq!(id.arn(), None);
    }

    #[test]
    fn parses_build_arn_and_keeps_location() {
        let id = BuildId::parse(BUILD_ARN).unwrap();
        let loc = id.location().unwrap();
        assert_eq!(
            (
                loc.partition.as_str(),
                loc.region.as_str(),
                loc.account.as_str()
            ),
            ("aws", "us-west-2", "123456789012")
        );
        assert_eq!(id.id(), format!("my-sample-project:{UUID}"));
        assert_eq!(id.arn().as_deref(), Some(BUILD_ARN));
    }

    #[test]
    fn parses_batch_arn_in_other_partition() {
        let arn = format!("arn:aws-cn:codebuild:cn-north-1:123456789012:build-batch/p_1:{UUID}");
        let id = BatchId::parse(&arn).unwrap();
        assert_eq!(id.location().unwrap().partition, "aws-cn");
        assert_eq!(id.arn().unwrap(), arn);
    }

    #[test]
    fn build_and_batch_arns_are_not_interchangeable() {
        let batch_arn = format!("arn:aws:codebuild:us-east-1:123456789012:build-batch/proj:{UUID}");
        assert!(matches!(
            BuildId::parse(&batch_arn),
            Err(IdError::WrongArn { .. })
        ));
        assert!(matches!(
            BatchId::parse(BUILD_ARN),
            Err(IdError::WrongArn { .. })
        ));
    }

    type Case<'a> = (&'a str, fn(&IdError) -> bool);

    #[test]
    fn rejects_malformed_ids_with_the_right_error() {
        let cases: &[Case] = &[
            ("", |e| matches!(e, IdError::Empty { .. })),
            ("no-colon", |e| matches!(e, IdError::Malformed { .. })),
            (":8745a7a9-c340-456a-9166-edf953571bEX", |e| {
                matches!(e, IdError::InvalidProject(_))
            }),
            ("-bad:8745a7a9-c340-456a-9166-edf953571bEX", |e| {
                matches!(e, IdError::InvalidProject(_))
            }),
            ("a b:8745a7a9-c340-456a-9166-edf953571bEX", |e| {
                matches!(e, IdError::InvalidProject(_))
            }),
            ("proj:not-a-uuid", |e| matches!(e, IdError::InvalidUuid(_))),
            ("proj:8745a7a9c340-456a-9166-edf953571bEX1", |e| {
                matches!(e, IdError::InvalidUuid(_))
            }),
            ("proj:8745a7a9-c340-456a-9166-edf953571bEX:x", |e| {
                matches!(e, IdError::InvalidUuid(_))
            }),
            ("arn:aws:s3:::bucket/key", |e| {
                matches!(e, IdError::WrongArn { .. })
            }),
            (
                "arn:aws:codebuild:us-east-1:12345:build/p:8745a7a9-c340-456a-9166-edf953571bEX",
                |e| matches!(e, IdError::WrongArn { .. }),
            ),
            ("arn:aws:codebuild:us-east-1:123456789012:project/p", |e| {
                matches!(e, IdError::WrongArn { .. })
            }),
        ];
        for (input, expected) in cases {
            let err = BuildId::parse(input).expect_err(input);
            assert!(expected(&err), "{input:?} gave {err:?}");
        }
    }

    #[test]
    fn project_name_length_limits() {
        let long = "a".repeat(255);
        assert!(BuildId::new(&long, UUID).is_ok());
        assert!(BuildId::new(&"a".repeat(256), UUID).is_err());
        assert!(BuildId::new("a", UUID).is_err());
    }

    #[test]
    fn url_encoding_round_trips_every_form() {
        let inputs = [
            BUILD_ARN.to_owned(),
            format!("my_project-2:{UUID}"),
            format!("arn:aws-us-gov:codebuild:us-gov-west-1:123456789012:build/x1:{UUID}"),
        ];
        for input in inputs {
            let id = BuildId::parse(&input).unwrap();
            let encoded = id.url_encoded();
            assert!(
                !encoded.contains('/') && !encoded.contains(':'),
                "{encoded}"
            );
            assert_eq!(BuildId::parse_url_encoded(&encoded).unwrap(), id);
        }
    }

    #[test]
    fn url_decoding_rejects_invalid_utf8() {
        assert_eq!(BuildId::parse_url_encoded("%FF%FE"), Err(IdError::NotUtf8));
    }

    #[test]
    fn serde_keeps_the_given_form() {
        let id: BuildId = serde_json::from_value(serde_json::json!(BUILD_ARN)).unwrap();
        assert_eq!(
            serde_json::to_value(&id).unwrap(),
            serde_json::json!(BUILD_ARN)
        );
        let short = format!("p1:{UUID}");
        let id: BuildId = serde_json::from_value(serde_json::json!(short)).unwrap();
        assert_eq!(serde_json::to_value(&id).unwrap(), serde_json::json!(short));
    }
}
