//! The console Lambda: serves the staff console's page and assets on the console API, with
//! no authoriser; the staff routes the page calls are JWT-authorised where they are served.

use console::{router, ConsoleConfig, FUNCTION};
use shopmind_runtime::{finish_router, run_on_lambda, RuntimeConfig, DEFAULT_BODY_LIMIT};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    shopmind_runtime::init_tracing();
    let runtime = RuntimeConfig::from_env()?;
    let app = finish_router(router(ConsoleConfig::from_env()?), DEFAULT_BODY_LIMIT);
    run_on_lambda(FUNCTION, &runtime, app).await?;
    Ok(())
}
