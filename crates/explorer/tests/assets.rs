//! The embedded assets: the vendored browser modules are exactly the files of
//! the npm packages pinned in `package.json`, every file the page loads is
//! served, and unknown files are a 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use animoca_explorer::{ASSETS, INDEX_HTML};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `name`'s version pinned in package.json.
fn pinned(name: &str) -> String {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("package.json")).unwrap()).unwrap();
    manifest["devDependencies"][name].as_str().unwrap_or_else(|| panic!("{name} is not pinned")).to_owned()
}

#[test]
fn vendored_modules_are_the_pinned_npm_files() {
    let vendored = [
        ("lightweight-charts", "dist/lightweight-charts.standalone.production.mjs", "lightweight-charts-{}.mjs"),
        ("socket.io-client", "dist/socket.io.esm.min.js", "socket.io-client-{}.esm.min.js"),
    ];
    for (package, file, served) in vendored {
        let version = pinned(package);
        let name = format!("vendor/{}", served.replace("{}", &version));
        let asset = ASSETS
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("{name} is not embedded: run scripts/vendor-explorer-assets"));
        let installed = root().join("node_modules").join(package).join(file);
        let original = std::fs::read(&installed)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/install-tools)", installed.display()));
        assert!(
            asset.body == original.as_slice(),
            "{name} differs from {package}@{version}: run scripts/vendor-explorer-assets"
        );
        assert!(asset.immutable, "{name} carries its version: cached for good");
    }
}

#[test]
fn every_file_the_page_loads_is_embedded() {
    let app = std::str::from_utf8(ASSETS.iter().find(|a| a.name == "app.js").unwrap().body).unwrap();
    let imports: Vec<&str> = app.lines().filter_map(|l| l.split("from \"./").nth(1)?.split('"').next()).collect();
    assert_eq!(imports.len(), 2, "{imports:?}");
    let linked: Vec<&str> = INDEX_HTML.split(['"', '\'']).filter_map(|part| part.strip_prefix("/explorer/")).collect();
    assert_eq!(linked, ["style.css", "app.js"]);
    for name in imports.into_iter().chain(linked) {
        assert!(ASSETS.iter().any(|a| a.name == name), "{name} is loaded but not embedded");
    }
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_their_types_and_caching() {
    use axum::{body::Body, http::Request};
    use tower::ServiceExt;

    let get = |path: &str| {
        let app: axum::Router = animoca_explorer::routes();
        let request = Request::get(path).body(Body::empty()).unwrap();
        async move { app.oneshot(request).await.unwrap() }
    };
    let page = get("/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"), "{policy}");

    let app = get("/explorer/app.js").await;
    assert_eq!(app.status(), 200);
    assert_eq!(app.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(app.headers()["cache-control"], "no-cache");
    let vendor = get("/explorer/vendor/socket.io-client-4.8.3.esm.min.js").await;
    assert_eq!(vendor.status(), 200);
    assert!(vendor.headers()["cache-control"].to_str().unwrap().contains("immutable"));

    for missing in ["/explorer/nope.js", "/explorer/../Cargo.toml", "/explorer/vendor/"] {
        assert_eq!(get(missing).await.status(), 404, "{missing}");
    }
}
