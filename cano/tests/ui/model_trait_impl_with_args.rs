use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

struct Router;

#[task::router(state = Step)]
impl RouterTask<Step> for Router {
    async fn route(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

struct Stepper;

#[task::stepped(key = String)]
impl SteppedTask<Step, String> for Stepper {
    type Cursor = u32;

    async fn step(
        &self,
        _res: &Resources<String>,
        _cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, Step>, CanoError> {
        Ok(StepOutcome::Done(TaskResult::Single(Step::Done)))
    }
}

struct Undo;

#[saga::task(state = Step)]
impl CompensatableTask<Step> for Undo {
    type Output = ();

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Step>, ()), CanoError> {
        Ok((TaskResult::Single(Step::Done), ()))
    }

    async fn compensate(&self, _res: &Resources, _output: ()) -> Result<(), CanoError> {
        Ok(())
    }
}

fn main() {}
