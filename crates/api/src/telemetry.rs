//! `/metrics` (Prometheus text) and the request metrics behind it:
//! `animoca_api_requests_total{route,status}` and
//! `animoca_api_request_seconds{route}` (the matched route pattern, never the
//! raw path, so ids do not explode the label set).

use std::{sync::OnceLock, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::{Shared, error::ApiError};

/// Installs the process-wide Prometheus recorder once and returns its handle
/// (`None` if another recorder was installed first).
pub fn install_recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .clone()
}

/// `GET /metrics`.
#[utoipa::path(get, operation_id = "telemetry_render", path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text", content_type = "text/plain"), (status = 404, description = "No recorder installed")))]
pub async fn render(State(state): State<Shared>) -> Response {
    match &state.metrics {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => ApiError::NotFound("metrics (no recorder installed)".to_owned()).into_response(),
    }
}

/// Counts and times every routed request.
pub async fn record(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    metrics::counter!("animoca_api_requests_total", "route" => route.clone(), "status" => status_label(status))
        .increment(1);
    metrics::histogram!("animoca_api_request_seconds", "route" => route).record(started.elapsed().as_secs_f64());
    response
}

fn status_label(status: StatusCode) -> String {
    status.as_u16().to_string()
}
