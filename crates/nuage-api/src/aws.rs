//! The AWS endpoint. Each AWS service lands here in its own issue; until a
//! service exists, every request gets an AWS-format error saying so, in the
//! protocol its SDK expects (XML for query and REST-XML services, JSON for
//! services addressed with `X-Amz-Target`).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// The AWS endpoint's router.
pub fn router() -> Router {
    Router::new().fallback(not_available)
}

/// The service a request is for, read from the SigV4 credential scope
/// (`Credential=AKID/20260101/us-east-1/s3/aws4_request`).
pub fn service_of(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let scope = cred.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_string)
}

async fn not_available(headers: HeaderMap) -> Response {
    let json = headers.contains_key("x-amz-target");
    let Some(service) = service_of(&headers) else {
        return error(
            Protocol::pick(json, ""),
            StatusCode::FORBIDDEN,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        );
    };
    error(
        Protocol::pick(json, &service),
        StatusCode::NOT_IMPLEMENTED,
        "NotImplemented",
        &format!("the {service} service is not available in nuage yet"),
    )
}

/// How a service's SDK expects errors.
#[derive(Clone, Copy)]
enum Protocol {
    /// JSON 1.0/1.1 (`X-Amz-Target`): `{"__type": ..., "message": ...}`.
    Json,
    /// REST-XML (S3): `<Error><Code>...`.
    RestXml,
    /// EC2 query: `<Response><Errors><Error>...`.
    Ec2,
    /// Query (IAM, STS, SNS, ...): `<ErrorResponse><Error>...`.
    Query,
}

impl Protocol {
    fn pick(json: bool, service: &str) -> Self {
        match service {
            _ if json => Protocol::Json,
            "s3" => Protocol::RestXml,
            "ec2" => Protocol::Ec2,
            _ => Protocol::Query,
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn error(protocol: Protocol, code: StatusCode, aws_code: &str, message: &str) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (c, m) = (escape(aws_code), escape(message));
    let xml = |inner: String| {
        (
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{inner}"),
            "text/xml",
        )
    };
    let (body, ct) = match protocol {
        Protocol::Json => (
            serde_json::json!({"__type": aws_code, "message": message}).to_string(),
            "application/x-amz-json-1.0",
        ),
        Protocol::RestXml => xml(format!(
            "<Error><Code>{c}</Code><Message>{m}</Message><RequestId>{request_id}</RequestId></Error>"
        )),
        Protocol::Ec2 => xml(format!(
            "<Response><Errors><Error><Code>{c}</Code><Message>{m}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )),
        Protocol::Query => xml(format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{c}</Code><Message>{m}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )),
    };
    let mut r = (code, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_is_read_from_the_credential_scope() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x"),
        );
        assert_eq!(service_of(&h).as_deref(), Some("s3"));
    }
}
