//! The OpenAPI 3.1 description served at `/openapi.json`.

use serde_json::{json, Value};

/// The OpenAPI document of the inference API.
pub fn document() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let errors = |codes: &[(&str, &str)]| -> Value {
        codes
            .iter()
            .map(|(status, why)| {
                (
                    status.to_string(),
                    json!({"description": why, "content": {"application/json": {"schema": error}}}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let mut single_responses = errors(&[
        ("400", "Malformed JSON or wrong types"),
        ("413", "Body over the size limit"),
        ("422", "Empty or whitespace-only text"),
        (
            "503",
            "No model loaded yet, or the queue is full in requests or bytes (see Retry-After)",
        ),
    ]);
    single_responses["200"] = json!({"description": "The sentiment", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Sentiment"}}}});
    let mut batch_responses = errors(&[
        ("400", "Malformed JSON or wrong types"),
        ("413", "Body over the size limit"),
        ("422", "No texts, more than 256, or an empty text"),
        (
            "503",
            "No model loaded yet, or the queue is full in requests or bytes (see Retry-After)",
        ),
    ]);
    batch_responses["200"] = json!({"description": "One result per text, in order", "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["results", "model_version"],
        "properties": {
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/Sentiment"}},
            "model_version": {"type": "string"}
        }
    }}}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "bloginfer inference",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Chinese sentiment of short texts (reviews, comments). Texts are normalised and segmented; a text longer than the model's maximum length (`config.max_len` tokens, see GET /v1/sentiment/model) is truncated to its first max_len tokens. Concurrent requests are batched together; the answer names the model version that produced it."
        },
        "paths": {
            "/v1/sentiment": {"post": {
                "summary": "Sentiment of one text",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["text"], "additionalProperties": false,
                    "properties": {"text": {"type": "string", "minLength": 1, "description": "Truncated to the model's max_len tokens."}}
                }}}},
                "responses": single_responses
            }},
            "/v1/sentiment/batch": {"post": {
                "summary": "Sentiment of up to 256 texts",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["texts"], "additionalProperties": false,
                    "properties": {"texts": {"type": "array", "minItems": 1, "maxItems": 256, "items": {"type": "string", "minLength": 1}}}
                }}}},
                "responses": batch_responses
            }},
            "/v1/sentiment/model": {"get": {
                "summary": "The model being served: version, config, evaluation metrics, loaded_at",
                "responses": {"200": {"description": "Model description"}, "503": {"description": "No model loaded yet", "content": {"application/json": {"schema": error}}}}
            }},
            "/v1/sentiment/stats": {"get": {
                "summary": "Requests served, rate and latency percentiles over the last minute",
                "responses": {"200": {"description": "Statistics"}}
            }},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}},
            "/readyz": {"get": {"summary": "Readiness: a model is loaded", "responses": {"200": {"description": "Ready"}, "503": {"description": "No model yet"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text exposition format"}}}}
        },
        "components": {"schemas": {
            "Sentiment": {
                "type": "object",
                "required": ["label", "score", "probabilities", "model_version"],
                "properties": {
                    "label": {"type": "string", "enum": ["negative", "positive"]},
                    "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "Probability of positive"},
                    "probabilities": {"type": "object", "properties": {"negative": {"type": "number"}, "positive": {"type": "number"}}},
                    "model_version": {"type": "string"}
                }
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}
                }}}
            }
        }}
    })
}
