//! A minimal `lambda_runtime` function for testing the harness's Runtime API with the real
//! runtime client. It answers with what it received; `{"fail": "msg"}` returns an error,
//! `{"exit": N}` exits the process; env `ECHO_EXIT_AT_INIT` makes start-up fail.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if let Some(message) = payload.get("fail").and_then(Value::as_str) {
        return Err(message.into());
    }
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        std::process::exit(code as i32);
    }
    println!(
        "{}",
        json!({"message": "invoked", "request_id": context.request_id})
    );
    Ok(json!({
        "event": payload,
        "request_id": context.request_id,
        "invoked_function_arn": context.invoked_function_arn,
        "deadline_ms": context.deadline,
        "function_name": context.env_config.function_name,
        "region": std::env::var("AWS_REGION").ok(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    if let Ok(reason) = std::env::var("ECHO_EXIT_AT_INIT") {
        eprintln!("lambda-echo: refusing to start: {reason}");
        std::process::exit(2);
    }
    lambda_runtime::run(service_fn(handle)).await
}
