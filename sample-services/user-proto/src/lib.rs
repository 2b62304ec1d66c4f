//! The user-service's gRPC API, generated from `sample-services/proto/user.proto`.

#![allow(unreachable_pub, clippy::all)]

tonic::include_proto!("user");
