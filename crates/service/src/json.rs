//! JSON request bodies. The body is read within the route's size limit
//! (axum's `DefaultBodyLimit`) and must be one JSON object: broken JSON is a
//! 400 `invalid_json`, JSON of the wrong shape (an array, a wrong type, a
//! missing or unknown field) a 422 `invalid_request`, and a body over the
//! limit a 413 `body_too_large`. The content type is not required, so plain
//! `curl -d` works.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ServiceError;
use crate::extract::BodyBytes;

/// A request body parsed as `T` (see the module documentation for the errors).
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ServiceError> {
        let BodyBytes(bytes) = BodyBytes::from_request(req, state).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as one JSON object of type `T`, with the errors of [`JsonBody`].
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServiceError> {
    // serde would take `["text"]` for a struct with one field; an API body is an object.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match serde_json::from_slice::<T>(bytes) {
        Ok(value) if first == Some(&b'{') => Ok(value),
        Ok(_) => Err(not_an_object()),
        Err(e) if e.is_data() => {
            if first == Some(&b'{') {
                Err(ServiceError::unprocessable(
                    "invalid_request",
                    format!("invalid request body: {e}"),
                ))
            } else {
                Err(not_an_object())
            }
        }
        Err(e) => Err(ServiceError::bad_request(
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        )),
    }
}

fn not_an_object() -> ServiceError {
    ServiceError::unprocessable("invalid_request", "the request body must be a JSON object")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        text: String,
    }

    fn outcome(raw: &str) -> Result<Body, (u16, String)> {
        parse::<Body>(raw.as_bytes()).map_err(|e| (e.status().as_u16(), e.code().to_string()))
    }

    #[test]
    fn syntax_is_400_shape_is_422() {
        assert_eq!(
            outcome(r#" {"text": "好"}"#),
            Ok(Body { text: "好".into() })
        );
        let syntax = Err((400, "invalid_json".to_string()));
        let shape = Err((422, "invalid_request".to_string()));
        assert_eq!(outcome(r#"{"text": "#), syntax);
        assert_eq!(outcome("not json"), syntax);
        assert_eq!(outcome(""), syntax);
        assert_eq!(outcome(r#"{"text": 42}"#), shape);
        assert_eq!(outcome(r#"{"text": "a", "extra": 1}"#), shape);
        assert_eq!(outcome(r#"{}"#), shape);
        assert_eq!(outcome(r#"["好"]"#), shape);
        assert_eq!(outcome("42"), shape);
    }
}
