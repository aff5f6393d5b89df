use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

struct Router;

#[task::router(state = Step)]
impl Router {
    async fn route(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }

    fn helper(&self) -> u32 {
        1
    }
}

struct Poller;

#[task::poll(state = Step)]
impl Poller {
    type Output = u32;

    async fn poll(&self, _res: &Resources) -> Result<PollOutcome<Step>, CanoError> {
        Ok(PollOutcome::Ready(TaskResult::Single(Step::Done)))
    }

    async fn run(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

struct Batch;

#[task::batch(state = Step)]
impl Batch {
    type Item = u32;
    type ItemOutput = u32;
    type Extra = ();

    async fn load(&self, _res: &Resources) -> Result<Vec<u32>, CanoError> {
        Ok(vec![])
    }

    async fn process_item(&self, item: &u32) -> Result<u32, CanoError> {
        Ok(*item)
    }

    async fn finish(
        &self,
        _res: &Resources,
        _outputs: Vec<Result<u32, CanoError>>,
    ) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }

    fn on_poll_error(&self) -> PollErrorPolicy {
        PollErrorPolicy::FailFast
    }
}

struct Stepper;

#[task::stepped(state = Step)]
impl Stepper {
    type State = Step;

    async fn step(
        &self,
        _res: &Resources,
        _cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, Step>, CanoError> {
        Ok(StepOutcome::Done(TaskResult::Single(Step::Done)))
    }

    fn concurrency(&self) -> usize {
        1
    }
}

fn main() {}
