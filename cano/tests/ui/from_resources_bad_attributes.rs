use cano::prelude::*;
use std::sync::Arc;

#[derive(FromResources)]
#[from_resources(kind = String)]
struct Deps {
    #[res(1 + 2)]
    sum: Arc<MemoryStore>,
    #[res]
    bare: Arc<MemoryStore>,
    #[res("a")]
    #[res("b")]
    twice: Arc<MemoryStore>,
    #[res(42)]
    number: Arc<MemoryStore>,
}

fn main() {}
