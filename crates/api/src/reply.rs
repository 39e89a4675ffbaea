//! The success envelope (SPEC §6), in one place: `{"success": true, "data": …}`
//! and, for lists, `"pagination"`. Errors: [`crate::error::ApiError`].

use axum::Json;
use serde_json::{Value, json};

/// `{"success": true, "data": data}`.
pub fn data(data: impl Into<Value>) -> Json<Value> {
    Json(json!({ "success": true, "data": data.into() }))
}

/// `{"success": true, "data": items, "pagination": pagination}`.
pub fn page(items: Vec<Value>, pagination: Value) -> Json<Value> {
    Json(json!({ "success": true, "data": items, "pagination": pagination }))
}
