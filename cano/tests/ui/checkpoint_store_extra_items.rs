use cano::prelude::*;

struct Extra;

#[checkpoint_store]
impl Extra {
    type Row = CheckpointRow;

    async fn append(&self, _workflow_id: &str, _row: CheckpointRow) -> Result<(), CanoError> {
        Ok(())
    }

    async fn load_run(&self, _workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        Ok(Vec::new())
    }

    async fn clear(&self, _workflow_id: &str) -> Result<(), CanoError> {
        Ok(())
    }

    async fn compact(&self, _workflow_id: &str) -> Result<(), CanoError> {
        Ok(())
    }
}

fn main() {}
