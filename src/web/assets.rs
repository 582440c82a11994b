//! Static CSS and JS, embedded in the binary (rust-embed; read from disk in debug builds so
//! edits show on reload). Served with an `ETag`; URLs carry a content hash (`?v=…`) so browsers
//! may cache them for a year and still see a new release at once.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Static;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/static/{path:.*}").route(web::get().to(serve)));
}

fn version(path: &str) -> Option<String> {
    Static::get(path).map(|f| hex::encode(&f.metadata.sha256_hash()[..8]))
}

/// The URL of an asset, with its content hash.
pub fn url(path: &str) -> String {
    match version(path) {
        Some(v) => format!("/static/{path}?v={v}"),
        None => format!("/static/{path}"),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

async fn serve(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    let file = (!path.contains("..") && !path.starts_with('/'))
        .then(|| Static::get(&path))
        .flatten();
    let Some(file) = file else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such file");
    };
    let hash = hex::encode(&file.metadata.sha256_hash()[..8]);
    let etag = format!("\"{hash}\"");
    let versioned = req
        .query_string()
        .split('&')
        .any(|p| p == format!("v={hash}"));
    // A hashed URL never changes content; an unhashed one must be revalidated.
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, cache))
            .finish();
    }
    HttpResponse::Ok()
        .content_type(content_type(&path))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache))
        .body(file.data.into_owned())
}
