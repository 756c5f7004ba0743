//! End-to-end and integration tests of the real binaries and adapters against codebuild-local
//! and moto. One test binary, not one per file: each links the AWS SDK, and ~17 copies cost
//! minutes of linking and gigabytes of disk (they once filled CI's). Tests run two at a time
//! either way (one thread per core), as they did when the binaries ran one after another.

mod auto_retry_e2e;
mod aws_ports_moto;
mod batch_reaper_e2e;
mod batch_trigger_e2e;
mod config_source_moto;
mod contract_moto;
mod harness;
mod http_front;
mod ledger_moto;
mod local_services;
mod moto_stack;
mod openapi_contract;
mod ops_api_e2e;
mod ops_api_schemathesis;
mod ops_api_write_e2e;
mod retry_book_moto;
mod webhook_e2e;
mod webhook_ports_moto;
