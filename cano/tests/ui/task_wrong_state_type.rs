use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

struct Mismatch;

#[task(state = Step)]
impl Mismatch {
    async fn run_bare(&self) -> Result<TaskResult<u32>, CanoError> {
        Ok(TaskResult::Single(1))
    }
}

fn main() {
    let _ = Step::Done;
}
