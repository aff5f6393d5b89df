//! A plain connection to a test database, to look at the tables behind the store's back
//! (apart from `pg_support`, which the CLI's tests share and which has no
//! `tokio_postgres` there).

/// A plain connection to the database at `url`.
pub async fn plain_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    tokio::spawn(connection);
    client
}
