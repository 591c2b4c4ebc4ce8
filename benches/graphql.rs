//! Run with: cargo bench --bench graphql
fn main() {}
