//! The quote page: `GET /` and its assets, embedded in the binary (no build step, no CDN). The page talks only
//! to this service: its Content-Security-Policy allows scripts, styles, fetches and sockets from this origin
//! alone (and WebAssembly, which the Draco and meshopt decoders are).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Every file the page loads: (path under /assets/, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../web/app.js")),
    ("app.css", "text/css; charset=utf-8", include_bytes!("../web/app.css")),
    ("three/three.module.js", "text/javascript; charset=utf-8", include_bytes!("../web/vendor/three/three.module.js")),
    ("three/three.core.js", "text/javascript; charset=utf-8", include_bytes!("../web/vendor/three/three.core.js")),
    ("three/LICENSE", "text/plain; charset=utf-8", include_bytes!("../web/vendor/three/LICENSE")),
    (
        "three/addons/controls/OrbitControls.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/addons/controls/OrbitControls.js"),
    ),
    (
        "three/addons/environments/RoomEnvironment.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/addons/environments/RoomEnvironment.js"),
    ),
    (
        "three/addons/loaders/STLLoader.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/addons/loaders/STLLoader.js"),
    ),
    (
        "three/addons/loaders/GLTFLoader.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/addons/loaders/GLTFLoader.js"),
    ),
    (
        "three/addons/loaders/DRACOLoader.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/addons/loaders/DRACOLoader.js"),
    ),
    (
        "three/addons/utils/BufferGeometryUtils.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/addons/utils/BufferGeometryUtils.js"),
    ),
    (
        "three/addons/utils/SkeletonUtils.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/addons/utils/SkeletonUtils.js"),
    ),
    (
        "three/addons/libs/meshopt_decoder.module.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/addons/libs/meshopt_decoder.module.js"),
    ),
    (
        "three/addons/libs/draco/draco_wasm_wrapper.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/three/addons/libs/draco/draco_wasm_wrapper.js"),
    ),
    (
        "three/addons/libs/draco/draco_decoder.wasm",
        "application/wasm",
        include_bytes!("../web/vendor/three/addons/libs/draco/draco_decoder.wasm"),
    ),
];

const INDEX: &str = include_str!("../web/index.html");

/// Scripts, styles, fetches, sockets and workers from this origin only; WebAssembly compiled from what those
/// scripts fetched (the decoders); images from the page itself (the 3D view's canvas).
const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; \
                   connect-src 'self'; img-src 'self' data: blob:; style-src 'self'; object-src 'none'; \
                   base-uri 'none'; frame-ancestors *; form-action 'self'";

fn with_headers(mut r: Response, content_type: &str) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// The page.
pub async fn index() -> Response {
    let mut r = with_headers(INDEX.into_response(), "text/html; charset=utf-8");
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// One of the page's files.
pub async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, content_type, bytes)) => {
            let mut r = with_headers((StatusCode::OK, *bytes).into_response(), content_type);
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
            r
        }
        None => ApiError::not_found(format!("no asset \"{path}\"")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        // Each `from "..."`/`from '...'` and each `/assets/...` URL in the page's own files and the vendored
        // modules resolves to an embedded asset: no request leaves for a file the binary does not have.
        let find = |p: &str| ASSETS.iter().any(|(a, _, _)| *a == p);
        for (path, _, bytes) in ASSETS.iter().filter(|(p, _, _)| p.ends_with(".js")) {
            let text = std::str::from_utf8(bytes).expect("utf-8");
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            for line in text.lines() {
                let line = line.trim();
                if !(line.starts_with("import ") || line.starts_with("} from ") || line.starts_with("export ")) {
                    continue;
                }
                for quote in ['"', '\''] {
                    let Some(at) = line.find(&format!("from {quote}")) else { continue };
                    let spec = &line[at + 6..];
                    let spec = &spec[..spec.find(quote).expect("closing quote")];
                    let resolved = if let Some(abs) = spec.strip_prefix("/assets/") {
                        abs.to_owned()
                    } else {
                        let mut parts: Vec<&str> = if dir.is_empty() { vec![] } else { dir.split('/').collect() };
                        for seg in spec.split('/') {
                            match seg {
                                "." => {}
                                ".." => {
                                    parts.pop();
                                }
                                s => parts.push(s),
                            }
                        }
                        parts.join("/")
                    };
                    assert!(find(&resolved), "{path} imports {spec} ({resolved}), which is not embedded");
                }
            }
        }
        assert!(INDEX.contains("/assets/app.js") && find("app.js") && find("app.css"));
        assert!(!INDEX.contains("http://") && !INDEX.contains("https://"), "the page names no other origin");
    }
}
