use cano::prelude::*;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Store,
}

#[derive(FromResources)]
struct Deps {
    #[res("cache")]
    cache: Arc<MemoryStore>,
    #[res(Key::Store)]
    store: Arc<MemoryStore>,
}

fn main() {}
