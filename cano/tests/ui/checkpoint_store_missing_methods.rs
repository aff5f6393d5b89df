use cano::prelude::*;

struct Partial;

#[checkpoint_store]
impl Partial {
    async fn append(&self, _workflow_id: &str, _row: CheckpointRow) -> Result<(), CanoError> {
        Ok(())
    }
}

fn main() {}
