use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

struct Router;

#[task::router]
impl Router {
    async fn route(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

struct Poller;

#[task::poll(key = String)]
impl Poller {
    async fn poll(&self, _res: &Resources<String>) -> Result<PollOutcome<Step>, CanoError> {
        Ok(PollOutcome::Ready(TaskResult::Single(Step::Done)))
    }
}

struct Stepper;

#[task::stepped]
impl Stepper {
    async fn step(
        &self,
        _res: &Resources,
        _cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, Step>, CanoError> {
        Ok(StepOutcome::Done(TaskResult::Single(Step::Done)))
    }
}

struct Undo;

#[saga::task]
impl Undo {
    type Output = ();

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Step>, ()), CanoError> {
        Ok((TaskResult::Single(Step::Done), ()))
    }

    async fn compensate(&self, _res: &Resources, _output: ()) -> Result<(), CanoError> {
        Ok(())
    }
}

fn main() {}
