use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

/// Deserializable but not `Serialize`: it cannot be recorded for compensation.
#[derive(serde::Deserialize)]
struct Receipt;

struct Reserve;

#[saga::task(state = Step)]
impl Reserve {
    type Output = Receipt;

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Step>, Receipt), CanoError> {
        Ok((TaskResult::Single(Step::Done), Receipt))
    }

    async fn compensate(&self, _res: &Resources, _output: Receipt) -> Result<(), CanoError> {
        Ok(())
    }
}

fn main() {}
