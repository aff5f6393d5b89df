use cano::prelude::*;
use std::sync::Arc;

#[derive(FromResources)]
struct Deps {
    #[res("store")]
    store: Arc<MemoryStore>,
    other: Arc<MemoryStore>,
}

fn main() {}
