use cano::prelude::*;
use std::sync::Arc;

#[derive(FromResources)]
struct Tuple(#[res("store")] Arc<MemoryStore>);

#[derive(FromResources)]
struct Unit;

fn main() {}
