"""From data to deployable artifacts: synthesis, loaders, training, pruning, distillation, export."""
