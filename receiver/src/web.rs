//! The HTTP side: one function builds the router (`router`), handlers stay thin over the
//! store, and every failure is one `AppError` with a clear status and a one-line message.
//!
//! - `POST /v1/metrics` (anonymous, as a telemetry endpoint is): store the report, answer
//!   with the manifest. At most 512 KiB, read within 10 s.
//! - `GET /` and `GET /databases/{db_uuid}`: the fleet page and one database's history,
//!   server-side HTML (no JavaScript), charts as SVG.
//! - `GET /api/fleet` and `GET /api/databases/{db_uuid}`: the same as JSON.
//! - `GET|POST /login`: trades the page token for a cookie (HttpOnly, SameSite=Strict).
//!
//! The page and `/api/` need the token, as `Authorization: Bearer <token>` or the cookie.
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use minijinja::{context, Environment};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::chart::{self, Series};
use crate::fleet::{self, VersionStatus};
use crate::manifest::{self, Manifest};
use crate::report::{Refusal, Report, MAX_REPORT_BYTES};
use crate::store::{Database, DatabaseDetail, Overview, Store, StoreError};

/// A whole request, body included, must be done within this (a slow-drip upload gets 408).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const COOKIE_NAME: &str = "receiver_token";

/// How long a report waits for one of the ingest slots before it is a 503.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub manifest: Arc<Manifest>,
    pub page_token: Arc<str>,
    templates: Arc<Environment<'static>>,
    /// Reports read, parsed or stored at once: twice the store's connections. A report's
    /// body is read only once it has a slot, so memory for reports in flight is bounded
    /// (a 512 KiB body parses into up to about 10 times its size).
    ingest_slots: Arc<Semaphore>,
}

impl App {
    /// `pool_size`: the store's connections (`RECEIVER_POOL_SIZE`).
    pub fn new(store: Store, manifest: Manifest, page_token: &str, pool_size: usize) -> App {
        let mut env = Environment::new();
        for (name, text) in [
            ("base.html", include_str!("../templates/base.html")),
            ("fleet.html", include_str!("../templates/fleet.html")),
            ("database.html", include_str!("../templates/database.html")),
            ("login.html", include_str!("../templates/login.html")),
        ] {
            env.add_template(name, text).expect("the templates are valid");
        }
        // Times as a person reads them: `2026-12-01 02:13:50 UTC`.
        env.add_filter("time", |t: String| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or(t)
        });
        env.add_filter("bytes", |b: Option<i64>| b.map(chart::human_bytes).unwrap_or_else(|| "–".into()));
        App {
            store,
            manifest: Arc::new(manifest),
            page_token: page_token.into(),
            templates: Arc::new(env),
            ingest_slots: Arc::new(Semaphore::new(2 * pool_size)),
        }
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<Response, AppError> {
        let html = self
            .templates
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| AppError::Internal(format!("template {name}: {e}")))?;
        Ok(([(CACHE_CONTROL, "no-store")], Html(html)).into_response())
    }
}

/// The receiver's routes.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/metrics", post(ingest).layer(DefaultBodyLimit::max(MAX_REPORT_BYTES)))
        .route("/", get(fleet_page))
        .route("/databases/{db_uuid}", get(database_page))
        .route("/api/fleet", get(fleet_json))
        .route("/api/databases/{db_uuid}", get(database_json))
        .route("/login", get(login_page).post(login))
        .layer(middleware::from_fn(within_timeout))
        .with_state(app)
}

/// Every request, its body included, within `REQUEST_TIMEOUT` (a 408 with its line).
async fn within_timeout(request: Request, next: Next) -> Response {
    tokio::time::timeout(REQUEST_TIMEOUT, next.run(request))
        .await
        .unwrap_or_else(|_| AppError::Timeout.into_response())
}

/// Every way a request fails: a status and one line.
#[derive(Debug)]
pub enum AppError {
    BadRequest(String),
    TooLarge,
    Timeout,
    Busy,
    Unauthorized,
    NotFound(String),
    Unavailable(String),
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::Unavailable(why) => AppError::Unavailable(why),
            StoreError::Rejected(why) => AppError::BadRequest(format!("the store refused the report: {why}")),
            StoreError::Failed(why) => AppError::Internal(why),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            AppError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            AppError::TooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, format!("the report is larger than {MAX_REPORT_BYTES} bytes"))
            }
            AppError::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                format!("the request was not complete within {} s", REQUEST_TIMEOUT.as_secs()),
            ),
            AppError::Busy => {
                (StatusCode::SERVICE_UNAVAILABLE, "the receiver is busy; try again later".to_string())
            }
            AppError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "the page token is missing or wrong (sign in at /login)".to_string(),
            ),
            AppError::NotFound(what) => (StatusCode::NOT_FOUND, what),
            AppError::Unavailable(why) => {
                log_unavailable(&why);
                (StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable; try again later".to_string())
            }
            AppError::Internal(why) => {
                tracing::error!("{why}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error (see the receiver's log)".to_string())
            }
        };
        let line = timescaledb_telemetry_core::http::one_line(&message);
        (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{line}\n")).into_response()
    }
}

/// The store's unavailability, logged at most once a second (a fleet retrying would
/// otherwise fill the log).
fn log_unavailable(why: &str) {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp();
    if LAST.swap(now, Ordering::Relaxed) != now {
        tracing::warn!("store unavailable: {why}");
    }
}

/// A report's body, at most `MAX_REPORT_BYTES`, read once it has an ingest slot (held
/// until the answer): a larger announced length is refused before any of the body is
/// awaited (the body limit alone would wait for the bytes, up to the request's timeout); a
/// longer body without a length is refused once the limit is read.
pub struct ReportBody(Bytes, #[allow(dead_code)] OwnedSemaphorePermit);

impl FromRequest<App> for ReportBody {
    type Rejection = AppError;

    async fn from_request(request: Request, app: &App) -> Result<ReportBody, AppError> {
        let announced =
            request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|n| n > MAX_REPORT_BYTES as u64) {
            return Err(AppError::TooLarge);
        }
        let slot = tokio::time::timeout(SLOT_WAIT, app.ingest_slots.clone().acquire_owned())
            .await
            .map_err(|_| AppError::Busy)?
            .expect("the semaphore is never closed");
        let body = Bytes::from_request(request, app).await.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge,
            _ => AppError::BadRequest(format!("the report could not be read: {}", e.body_text())),
        })?;
        Ok(ReportBody(body, slot))
    }
}

/// `POST /v1/metrics`: stored and committed, then answered with the manifest.
async fn ingest(State(app): State<App>, ReportBody(body, _slot): ReportBody) -> Result<Response, AppError> {
    let report = Report::parse(&body).map_err(|Refusal(why)| AppError::BadRequest(why))?;
    app.store.insert(&report).await?;
    let mut response = ([(CONTENT_TYPE, "application/json")], app.manifest.body.clone()).into_response();
    if let Some(signature) = app.manifest.signature().and_then(|s| HeaderValue::from_str(&s).ok()) {
        response.headers_mut().insert(manifest::HEADER, signature);
    }
    Ok(response)
}

/// A request that carries the page token.
pub struct Reader;

impl FromRequestParts<App> for Reader {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Reader, AppError> {
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let cookie = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE_NAME).and_then(|c| c.strip_prefix('=')));
        match bearer.or(cookie) {
            Some(given) if token_matches(&app.page_token, given) => Ok(Reader),
            _ => Err(AppError::Unauthorized),
        }
    }
}

fn token_matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[derive(Deserialize)]
struct LoginForm {
    token: Option<String>,
    /// Where to go once signed in: a path of this site only.
    next: Option<String>,
}

/// `GET /login`: the form; with `?token=` (the link `scripts/demo` prints) it signs in at
/// once.
async fn login_page(State(app): State<App>, Query(form): Query<LoginForm>) -> Result<Response, AppError> {
    match form.token {
        Some(token) => sign_in(&app, &token, form.next.as_deref()),
        None => app.render("login.html", context! { failed => false }),
    }
}

/// `POST /login`: the form's answer.
async fn login(State(app): State<App>, Form(form): Form<LoginForm>) -> Result<Response, AppError> {
    sign_in(&app, form.token.as_deref().unwrap_or(""), form.next.as_deref())
}

fn sign_in(app: &App, token: &str, next: Option<&str>) -> Result<Response, AppError> {
    if !token_matches(&app.page_token, token) {
        let mut page = app.render("login.html", context! { failed => true })?;
        *page.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(page);
    }
    let cookie = format!("{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000");
    let cookie = HeaderValue::from_str(&cookie).map_err(|e| AppError::Internal(e.to_string()))?;
    // Only a path of ours: `/` then letters, digits and `/_.-?=&%:` — never `//host`, `/\\host`
    // or a tab or space that a browser strips into one of those.
    let next = next
        .filter(|n| {
            n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_.-?=&%:".contains(&b))
        })
        .and_then(|n| HeaderValue::from_str(n).ok())
        .unwrap_or(HeaderValue::from_static("/"));
    Ok((StatusCode::SEE_OTHER, [(LOCATION, next), (SET_COOKIE, cookie)]).into_response())
}

/// The fleet as the page and `/api/fleet` show it.
struct Fleet {
    overview: Overview,
    versions: Vec<VersionStatus>,
    attention: Vec<(Database, Option<String>)>,
}

async fn fleet(app: &App) -> Result<Fleet, AppError> {
    let overview = app.store.overview().await?;
    let versions = fleet::judge(&app.manifest, &overview.versions);
    let worst_first: Vec<String> =
        versions.iter().filter(|v| v.needs_attention()).map(|v| v.version.clone()).collect();
    let attention = app
        .store
        .attention(&worst_first)
        .await?
        .into_iter()
        .map(|d| {
            let status = versions.iter().find(|v| Some(&v.version) == d.version.as_ref());
            let why = status.map(|s| match &s.worst {
                Some(severity) => format!("advisory ({severity})"),
                None => "out of date".to_string(),
            });
            (d, why)
        })
        .collect();
    Ok(Fleet { overview, versions, attention })
}

fn chart_of(overview_growth: &[crate::store::Growth], title: &str) -> String {
    let series: Vec<Series> = overview_growth
        .iter()
        .map(|g| Series { label: g.db_uuid.to_string(), points: g.points.clone() })
        .collect();
    chart::volume_svg(title, &series)
}

async fn fleet_page(_: Reader, State(app): State<App>) -> Result<Response, AppError> {
    let f = fleet(&app).await?;
    let attention: Vec<_> =
        f.attention.iter().map(|(d, why)| context! { database => d, why => why }).collect();
    let chart = chart_of(&f.overview.growth, "Data volume of the largest databases, last 30 days");
    app.render(
        "fleet.html",
        context! {
            current => app.manifest.current.as_str(),
            overview => f.overview,
            versions => f.versions,
            attention => attention,
            chart => chart,
            now => chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        },
    )
}

async fn fleet_json(_: Reader, State(app): State<App>) -> Result<Response, AppError> {
    let f = fleet(&app).await?;
    let o = f.overview;
    Ok(Json(json!({
        "current_version": app.manifest.current.as_str(),
        "reporting": { "last_day": o.last_day, "last_week": o.last_week, "known": o.known },
        "versions": f.versions,
        "postgresql_versions": o.postgresql_versions.iter()
            .map(|(v, n)| json!({ "version": v, "databases": n })).collect::<Vec<_>>(),
        "attention": f.attention.iter()
            .map(|(d, why)| json!({ "database": d, "why": why })).collect::<Vec<_>>(),
        "largest": o.largest,
        "growth": o.growth,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct At {
    /// A report of the history, by its `received_at` (RFC 3339).
    at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn database(
    app: &App,
    db_uuid: &str,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<DatabaseDetail, AppError> {
    let id =
        Uuid::parse_str(db_uuid).map_err(|_| AppError::NotFound(format!("{db_uuid:?} is not a UUID")))?;
    app.store
        .database(id, at)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no report from database {id}")))
}

async fn database_page(
    _: Reader,
    State(app): State<App>,
    Path(db_uuid): Path<String>,
    Query(At { at }): Query<At>,
) -> Result<Response, AppError> {
    let d = database(&app, &db_uuid, at).await?;
    let status =
        d.database.version.as_ref().map(|v| fleet::judge(&app.manifest, &[(v.clone(), 1)]).remove(0));
    let chart = chart_of(&d.growth, "Data volume of this database, last 30 days");
    let report = d.report.as_ref().map(|r| serde_json::to_string_pretty(r).unwrap_or_default());
    app.render(
        "database.html",
        context! { d => d, status => status, chart => chart, report => report, current => app.manifest.current.as_str() },
    )
}

async fn database_json(
    _: Reader,
    State(app): State<App>,
    Path(db_uuid): Path<String>,
    Query(At { at }): Query<At>,
) -> Result<Response, AppError> {
    Ok(Json(database(&app, &db_uuid, at).await?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_match_exactly() {
        assert!(token_matches("0123456789abcdef", "0123456789abcdef"));
        for wrong in ["", "0123456789abcde", "0123456789abcdefg", "0123456789abcdeF"] {
            assert!(!token_matches("0123456789abcdef", wrong), "{wrong}");
        }
    }

    #[test]
    fn every_error_is_one_line_with_its_status() {
        for (e, status) in [
            (AppError::BadRequest("a\nb".into()), 400),
            (AppError::TooLarge, 413),
            (AppError::Unauthorized, 401),
            (AppError::Unavailable("down".into()), 503),
        ] {
            let r = e.into_response();
            assert_eq!(r.status().as_u16(), status);
        }
    }
}
