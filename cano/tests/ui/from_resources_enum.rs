use cano::prelude::*;
use std::sync::Arc;

#[derive(FromResources)]
enum Deps {
    Store(Arc<MemoryStore>),
}

fn main() {}
