//! The events WebSocket with a real client (tokio-tungstenite) over a real socket: status changes pushed, the
//! final result equal to the poll's, a normal close; a late client gets the final result at once.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test reports failure")]

mod common;

use common::*;
use futures::StreamExt;
use gateway::Config;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

async fn listen(gw: &Gateway) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway::serve(listener, gw.router.clone(), std::future::pending()));
    addr
}

/// Every message until the server closes: the JSON messages and the close code.
async fn messages(url: &str) -> (Vec<serde_json::Value>, Option<CloseCode>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut got = Vec::new();
    let read = async {
        while let Some(m) = ws.next().await {
            match m.unwrap() {
                Message::Text(t) => got.push(serde_json::from_str(&t).unwrap()),
                Message::Close(frame) => return frame.map(|f| f.code),
                _ => {}
            }
        }
        None
    };
    let code = tokio::time::timeout(std::time::Duration::from_secs(30), read).await.expect("closed within 30 s");
    (got, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_is_pushed_and_the_socket_closes_normally() {
    let gw = Gateway::start(Config::default(), true);
    let addr = listen(&gw).await;
    // Several jobs at once, so some are still queued when their socket opens.
    let mut ids = Vec::new();
    for alloy in ["18k-yellow", "pt950", "sterling-925", "24k"] {
        let (_, _, body) = gw.send(post(&format!("/v1/quotes?alloy={alloy}"), "model/stl", ring())).await;
        ids.push(body["job_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let (msgs, code) = messages(&format!("ws://{addr}/v1/quotes/{id}/events")).await;
        assert_eq!(code, Some(CloseCode::Normal));
        let statuses: Vec<&str> = msgs.iter().map(|m| m["status"].as_str().unwrap()).collect();
        assert_eq!(statuses.last(), Some(&"done"), "{statuses:?}");
        let order = |s: &str| ["queued", "running", "done"].iter().position(|x| *x == s).unwrap();
        assert!(statuses.windows(2).all(|w| order(w[0]) < order(w[1])), "one message per change: {statuses:?}");
        let last = msgs.last().unwrap();
        assert_eq!(last["job_id"], id.as_str());
        assert!(last["timings_ms"]["total"].as_f64().unwrap() > 0.0);
        // The pushed result is the polled one.
        assert_eq!(*last, gw.wait(id).await);
    }
    // A client that connects after the end gets the final result at once, then a normal close.
    let (msgs, code) = messages(&format!("ws://{addr}/v1/quotes/{}/events", ids[0])).await;
    assert_eq!((msgs.len(), msgs[0]["status"].as_str(), code), (1, Some("done"), Some(CloseCode::Normal)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_needs_the_key_and_a_browser_can_pass_it_in_the_query() {
    let key = "websocket-test-key-0002";
    let gw = Gateway::start(Config { api_keys: vec![key.into()], ..Config::default() }, true);
    let addr = listen(&gw).await;
    let request = axum::http::Request::post("/v1/quotes")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "model/stl")
        .body(axum::body::Body::from(ring()))
        .unwrap();
    let (_, _, body) = gw.send(request).await;
    let id = body["job_id"].as_str().unwrap();
    match tokio_tungstenite::connect_async(format!("ws://{addr}/v1/quotes/{id}/events")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let (msgs, code) = messages(&format!("ws://{addr}/v1/quotes/{id}/events?access_token={key}")).await;
    assert_eq!(msgs.last().unwrap()["status"], "done");
    assert_eq!(code, Some(CloseCode::Normal));
}
