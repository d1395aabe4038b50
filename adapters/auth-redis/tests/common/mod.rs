//! Options for the harness's secured Redis servers and clusters, shared by the tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use auth_redis::RedisOptions;
use auth_tests::redis::{Redis, RedisCluster};
use secrecy::SecretString;

/// TLS against `ca`, the ACL `user`; a response timeout a loaded CI machine's loopback
/// answers well within.
pub(crate) fn secured_options(url: &str, user: &str, password: &str, ca: &Path) -> RedisOptions {
    RedisOptions::new(url)
        .unwrap()
        .with_ca_pem(std::fs::read(ca).unwrap())
        .with_user(user, SecretString::from(password.to_owned()))
        .with_response_timeout(Duration::from_secs(2))
}

/// The options for a `Redis::start_secured` server.
pub(crate) fn secured(redis: &Redis) -> RedisOptions {
    secured_options(
        &redis.url(),
        redis.acl_user().unwrap(),
        redis.acl_password().unwrap(),
        redis.ca_file().unwrap(),
    )
}

/// The options for a `RedisCluster::start(Some(ca))` cluster, every node a seed.
pub(crate) fn cluster(cluster: &RedisCluster) -> RedisOptions {
    let urls = cluster.urls();
    secured_options(
        &urls[0],
        cluster.acl_user().unwrap(),
        cluster.acl_password().unwrap(),
        cluster.ca_file().unwrap(),
    )
    .cluster(&urls[1..])
    .unwrap()
}
