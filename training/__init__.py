"""Fine-tuning: TrainConfig, base models, dataset building, QLoRA SFT, run supervision, local inference."""
