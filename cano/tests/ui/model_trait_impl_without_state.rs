use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

struct Router;

// The companion `Task` impl needs the state type from the header.
#[task::router]
impl RouterTask for Router {
    async fn route(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

#[task::poll]
struct NotAnImpl;

fn main() {}
