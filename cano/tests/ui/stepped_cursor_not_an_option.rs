use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

// Without `type Cursor`, the cursor type is read off `cursor: Option<C>`.
struct Plain;

#[task::stepped(state = Step)]
impl Plain {
    async fn step(
        &self,
        _res: &Resources,
        cursor: u32,
    ) -> Result<StepOutcome<u32, Step>, CanoError> {
        Ok(StepOutcome::More(cursor + 1))
    }
}

struct NoCursor;

#[task::stepped(state = Step)]
impl NoCursor {
    async fn step(&self, _res: &Resources) -> Result<StepOutcome<u32, Step>, CanoError> {
        Ok(StepOutcome::Done(TaskResult::Single(Step::Done)))
    }
}

fn main() {}
