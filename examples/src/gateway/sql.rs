//! The few statements the demo gateway answers itself: enough for psql, tokio-postgres,
//! psycopg and JDBC to connect and ask who they are.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, stream};
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DataRowEncoder, DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo,
    QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, METADATA_USER, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;

/// What a statement is, once recognized.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Statement {
    /// `SELECT 1`.
    One,
    /// `SELECT CURRENT_USER`, `SESSION_USER`, `USER` (any of them, in order).
    Users(Vec<String>),
    /// `SELECT version()`.
    Version,
    /// `SHOW name`.
    Show(String),
    /// `SET ...`, `BEGIN`, `COMMIT`, ... acknowledged and ignored.
    Command(&'static str),
    /// The empty statement.
    Empty,
}

fn recognize(sql: &str) -> Option<Statement> {
    let text = sql.trim().trim_end_matches(';').trim().to_ascii_lowercase();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Some(Statement::Empty);
    }
    if text == "select 1" {
        return Some(Statement::One);
    }
    if text == "select version()" {
        return Some(Statement::Version);
    }
    if let Some(columns) = text.strip_prefix("select ") {
        let names: Vec<String> = columns.split(',').map(|c| c.trim().to_owned()).collect();
        if names.iter().all(|n| {
            matches!(
                n.as_str(),
                "current_user" | "session_user" | "user" | "current_user()"
            )
        }) {
            return Some(Statement::Users(names));
        }
    }
    if let Some(name) = text.strip_prefix("show ") {
        return Some(Statement::Show(name.to_owned()));
    }
    for (prefix, tag) in [
        ("set ", "SET"),
        ("begin", "BEGIN"),
        ("commit", "COMMIT"),
        ("rollback", "ROLLBACK"),
    ] {
        if text.starts_with(prefix) {
            return Some(Statement::Command(tag));
        }
    }
    None
}

fn unsupported() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        "0A000".to_owned(),
        "the demo gateway answers SELECT 1, SELECT CURRENT_USER / SESSION_USER, SELECT version(), SHOW and SET".to_owned(),
    )))
}

fn show(name: &str) -> String {
    match name {
        "server_version" => "16.6 (auth gateway)".into(),
        "server_encoding" | "client_encoding" => "UTF8".into(),
        "transaction_isolation" => "read committed".into(),
        "standard_conforming_strings" => "on".into(),
        "timezone" => "Etc/UTC".into(),
        "datestyle" => "ISO, YMD".into(),
        "max_identifier_length" => "63".into(),
        _ => String::new(),
    }
}

fn fields(statement: &Statement, format: &dyn Fn(usize) -> FieldFormat) -> Vec<FieldInfo> {
    match statement {
        Statement::One => vec![FieldInfo::new(
            "?column?".into(),
            None,
            None,
            Type::INT4,
            format(0),
        )],
        Statement::Users(names) => names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                FieldInfo::new(
                    n.trim_end_matches("()").into(),
                    None,
                    None,
                    Type::NAME,
                    format(i),
                )
            })
            .collect(),
        Statement::Version => vec![FieldInfo::new(
            "version".into(),
            None,
            None,
            Type::TEXT,
            format(0),
        )],
        Statement::Show(name) => vec![FieldInfo::new(
            name.clone(),
            None,
            None,
            Type::TEXT,
            format(0),
        )],
        Statement::Command(_) | Statement::Empty => Vec::new(),
    }
}

fn respond<C: ClientInfo>(
    client: &C,
    statement: &Statement,
    format: &dyn Fn(usize) -> FieldFormat,
) -> PgWireResult<Response> {
    let user = auth_pgwire::session(client)
        .map(|s| s.user())
        .or_else(|| client.metadata().get(METADATA_USER).cloned())
        .unwrap_or_default();
    let schema = Arc::new(fields(statement, format));
    let mut encoder = DataRowEncoder::new(schema.clone());
    match statement {
        Statement::Empty => return Ok(Response::EmptyQuery),
        Statement::Command(tag) => return Ok(Response::Execution(Tag::new(tag))),
        Statement::One => encoder.encode_field(&1i32)?,
        Statement::Users(names) => {
            for _ in names {
                encoder.encode_field(&user)?;
            }
        }
        Statement::Version => encoder.encode_field(&"PostgreSQL 16.6 (auth gateway demo)")?,
        Statement::Show(name) => encoder.encode_field(&show(name))?,
    }
    let row = encoder.take_row();
    Ok(Response::Query(QueryResponse::new(
        schema,
        stream::iter(vec![Ok(row)]),
    )))
}

/// Answers the demo statements over the simple and the extended protocol.
#[derive(Debug, Default)]
pub struct DemoSql;

#[async_trait]
impl SimpleQueryHandler for DemoSql {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
    {
        let statement = recognize(query).ok_or_else(unsupported)?;
        Ok(vec![respond(client, &statement, &|_| FieldFormat::Text)?])
    }
}

#[async_trait]
impl ExtendedQueryHandler for DemoSql {
    type Statement = String;
    type QueryParser = NoopQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(NoopQueryParser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = recognize(&portal.statement.statement).ok_or_else(unsupported)?;
        respond(client, &statement, &|i| {
            portal.result_column_format.format_for(i)
        })
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = recognize(&target.statement).ok_or_else(unsupported)?;
        Ok(DescribeStatementResponse::new(
            Vec::new(),
            fields(&statement, &|_| FieldFormat::Text),
        ))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = recognize(&target.statement.statement).ok_or_else(unsupported)?;
        Ok(DescribePortalResponse::new(fields(&statement, &|i| {
            target.result_column_format.format_for(i)
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_the_demo_statements() {
        assert_eq!(recognize("SELECT 1;"), Some(Statement::One));
        assert_eq!(
            recognize("  select   CURRENT_USER , session_user "),
            Some(Statement::Users(vec![
                "current_user".into(),
                "session_user".into()
            ]))
        );
        assert_eq!(
            recognize("SHOW server_version"),
            Some(Statement::Show("server_version".into()))
        );
        assert_eq!(
            recognize("SET extra_float_digits = 3"),
            Some(Statement::Command("SET"))
        );
        assert_eq!(recognize(";"), Some(Statement::Empty));
        assert_eq!(recognize("DROP TABLE users"), None);
        assert_eq!(recognize("SELECT current_user, password FROM x"), None);
    }
}
