use cano::prelude::*;
use std::rc::Rc;
use std::sync::Arc;

#[derive(FromResources)]
struct Deps {
    #[res("boxed")]
    boxed: Box<MemoryStore>,
    #[res("rc")]
    rc: Rc<MemoryStore>,
    #[res("bare")]
    bare: MemoryStore,
    #[res("ok")]
    ok: Arc<MemoryStore>,
}

fn main() {}
