//! Who is calling: the IAM identity API Gateway verified (`AWS_IAM` authorization) and put in
//! the request context, `requestContext.authorizer.iam.userArn`.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::http::ApiError;

/// Longest caller ARN accepted (IAM ARNs are far shorter; this bounds what reaches the ledger).
const MAX_CALLER_LEN: usize = 2048;

/// The IAM principal that signed the request (a user or an assumed-role session ARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(String);

impl Caller {
    /// A caller from an ARN (tests, and requests built by hand).
    pub fn new(arn: impl Into<String>) -> Self {
        Self(arn.into())
    }

    /// The caller of an API Gateway HTTP API request; 401 when the request context carries no
    /// IAM identity (a route deployed without `AWS_IAM`, or an event not from API Gateway).
    pub fn of(request: &Request) -> Result<Self, ApiError> {
        let arn = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context
                .authorizer
                .as_ref()
                .and_then(|authorizer| authorizer.iam.as_ref())
                .and_then(|iam| iam.user_arn.as_deref()),
            _ => None,
        };
        match arn.map(str::trim) {
            Some(arn)
                if !arn.is_empty()
                    && arn.len() <= MAX_CALLER_LEN
                    && arn.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Ok(Self(arn.to_owned()))
            }
            _ => Err(ApiError::Unauthorized(
                "no IAM caller in the request context (requestContext.authorizer.iam.userArn): \
                 sign the request with SigV4"
                    .into(),
            )),
        }
    }

    /// The ARN.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
