"""After a task: the model reflects on its trace, a curator mints behaviors, a worker drains the queue."""
