use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

// `load` and `finish` are both missing: one error each.
struct Batch;

#[task::batch(state = Step)]
impl Batch {
    async fn process_item(&self, item: &u32) -> Result<u32, CanoError> {
        Ok(*item)
    }
}

fn main() {}
