//! The native baseline for the store benchmark: runs one query N times with
//! sqlx directly on a component's database and prints microseconds per
//! query. `store-native sqlite:PATH|postgres://… SQL TIMES [SEARCH_PATH]`.

use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), sqlx::Error> {
    let args: Vec<String> = std::env::args().collect();
    let (url, sql) = (&args[1], &args[2]);
    let times: u32 = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1000);
    let per_query = if url.starts_with("postgres") {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?;
        if let Some(schema) = args.get(4) {
            sqlx::query(&format!("SET search_path TO \"{schema}\"")).execute(&pool).await?;
        }
        let started = Instant::now();
        for _ in 0..times {
            sqlx::query(sql).bind(1_i64).fetch_all(&pool).await?;
        }
        started.elapsed().as_micros() as f64 / f64::from(times)
    } else {
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(url).await?;
        let started = Instant::now();
        for _ in 0..times {
            sqlx::query(sql).bind(1_i64).fetch_all(&pool).await?;
        }
        started.elapsed().as_micros() as f64 / f64::from(times)
    };
    println!("{per_query:.1}");
    Ok(())
}
