use cano::prelude::*;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Store,
}

#[allow(unused_imports)]
use Key::Store;

#[derive(FromResources)]
struct Deps {
    #[res(Store)]
    store: Arc<MemoryStore>,
}

fn main() {}
