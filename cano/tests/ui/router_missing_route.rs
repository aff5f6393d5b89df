use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

struct Router;

#[task::router(state = Step)]
impl Router {
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "router".into()
    }
}

fn main() {}
