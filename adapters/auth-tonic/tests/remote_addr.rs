//! Behind `auth_tonic::incoming`, tonic's `Request::remote_addr()` still answers: the
//! layer gives it the client the listener admitted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use auth_core::{ApiKeyAuthenticator, Chain, Engine, MemoryStore, Peer, Policy};
use auth_listen::ConnectionFacts;
use auth_tonic::AuthLayer;
use tonic::body::Body;
use tower::{Layer, ServiceExt};

#[tokio::test]
async fn handlers_see_the_admitted_client_as_tonics_remote_addr() {
    let chain = Chain::builder()
        .link(Arc::new(ApiKeyAuthenticator::new(Arc::new(
            MemoryStore::new(),
        ))))
        .build();
    let engine = Arc::new(Engine::builder(Policy::single(chain).unwrap()).build());
    let seen = Arc::new(Mutex::new(None));
    let service = {
        let seen = seen.clone();
        tower::service_fn(move |request: http::Request<Body>| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap() = Some(tonic::Request::from_http(request).remote_addr());
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
            }
        })
    };
    let client: SocketAddr = "203.0.113.7:40000".parse().unwrap();
    let mut request = http::Request::builder()
        .uri("/grpc.health.v1.Health/Check")
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectionFacts::unplaced(Peer::Tcp(client), None));
    AuthLayer::new(engine)
        .allow_anonymous()
        .layer(service)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(Some(client)));
}
