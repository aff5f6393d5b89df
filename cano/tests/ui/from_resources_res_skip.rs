use cano::prelude::*;
use std::sync::Arc;

#[derive(FromResources)]
struct Deps {
    #[res("store")]
    store: Arc<MemoryStore>,
    #[res(skip)]
    cache: Arc<MemoryStore>,
}

fn main() {}
