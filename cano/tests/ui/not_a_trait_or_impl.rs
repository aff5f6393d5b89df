use cano::prelude::*;

#[task]
struct NotATask;

#[resource]
fn not_a_resource() {}

#[checkpoint_store]
enum NotAStore {}

fn main() {}
