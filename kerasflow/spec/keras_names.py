"""Loss and metric names Keras resolves from a string (Keras 3.15), TF-free,
so `validate` can reject a typo before TensorFlow is imported. A test compares
these tuples with `keras.losses` / `keras.metrics` of the installed Keras."""

LOSSES = (
    "BCE", "BinaryCrossentropy", "BinaryFocalCrossentropy", "CTC", "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy", "CategoricalHinge", "Circle", "CosineSimilarity", "Dice", "Hinge",
    "Huber", "KLD", "KLDivergence", "LogCosh", "MAE", "MAPE", "MSE", "MSLE", "MeanAbsoluteError",
    "MeanAbsolutePercentageError", "MeanSquaredError", "MeanSquaredLogarithmicError", "Poisson",
    "SparseCategoricalCrossentropy", "SquaredHinge", "Tversky", "bce", "binary_crossentropy",
    "binary_focal_crossentropy", "categorical_crossentropy", "categorical_focal_crossentropy",
    "categorical_hinge", "circle", "cosine_similarity", "ctc", "dice", "hinge", "huber", "kl_divergence",
    "kld", "log_cosh", "mae", "mape", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_error", "mean_squared_logarithmic_error", "mse", "msle", "poisson",
    "sparse_categorical_crossentropy", "squared_hinge", "tversky",
)

# `compile` also resolves these itself (keras/src/trainers/compile_utils.py),
# case-insensitively, to the accuracy/crossentropy that fits the target.
COMPILE_METRICS = ("accuracy", "acc", "crossentropy", "ce")

# Metrics whose constructor needs arguments (IoU, PrecisionAtRecall, ...) are
# left out: Keras cannot build them from a name alone.
METRICS = (
    "AUC", "Accuracy", "BCE", "BinaryAccuracy", "BinaryCrossentropy", "BinaryIoU", "CategoricalAccuracy",
    "CategoricalCrossentropy", "CategoricalHinge", "ConcordanceCorrelation", "CosineSimilarity", "F1Score",
    "FBetaScore", "FalseNegatives", "FalsePositives", "Hinge", "KLDivergence", "LogCoshError", "MAE", "MAPE",
    "MSE", "MSLE", "Mean", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredError",
    "MeanSquaredLogarithmicError", "PearsonCorrelation", "Poisson", "Precision", "R2Score", "Recall",
    "RootMeanSquaredError", "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy", "SquaredHinge", "Sum", "TopKCategoricalAccuracy", "TrueNegatives",
    "TruePositives", "accuracy", "auc", "bce", "binary_accuracy", "binary_crossentropy", "binary_io_u",
    "categorical_accuracy", "categorical_crossentropy", "categorical_hinge", "concordance_correlation",
    "cosine_similarity", "f1_score", "f_beta_score", "false_negatives", "false_positives", "hinge",
    "kl_divergence", "log_cosh_error", "mae", "mape", "mean", "mean_absolute_error",
    "mean_absolute_percentage_error", "mean_squared_error", "mean_squared_logarithmic_error", "mse", "msle",
    "pearson_correlation", "poisson", "precision", "r2_score", "recall", "root_mean_squared_error",
    "sparse_categorical_accuracy", "sparse_categorical_crossentropy", "sparse_top_k_categorical_accuracy",
    "squared_hinge", "sum", "top_k_categorical_accuracy", "true_negatives", "true_positives",
)

# Losses that read one-hot (or probability) labels; kerasflow's category and
# sequence targets are integer class indices.
ONE_HOT_LOSSES = (
    "categorical_crossentropy", "CategoricalCrossentropy", "categorical_focal_crossentropy",
    "CategoricalFocalCrossentropy", "categorical_hinge", "CategoricalHinge",
    "kl_divergence", "kld", "KLD", "KLDivergence",
)
# Losses that read integer class indices.
SPARSE_LOSSES = ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy")
# Losses that read 0/1 labels against one probability (or logit) per example.
BINARY_LOSSES = (
    "binary_crossentropy", "BinaryCrossentropy", "bce", "BCE", "binary_focal_crossentropy",
    "BinaryFocalCrossentropy", "hinge", "Hinge", "squared_hinge", "SquaredHinge",
)
