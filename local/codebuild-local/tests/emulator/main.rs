//! The emulator through the real AWS SDK: its API, seeding, and its shapes against botocore's
//! CodeBuild model. One test binary so the SDK is linked once.

mod sdk;
mod seeding;
mod service_model;
