"""Loss and metric classes Keras builds from a spec mapping such as
`{type: binary_crossentropy, from_logits: true}`, and the constructor
arguments each class takes (Keras 3.15), TF-free so `validate` can check
them. Every alias Keras resolves from a string maps to the class it stands
for. A test compares these tables with the installed Keras signatures.
"""

from typing import Any

LOSS_CLASSES = {'BCE': 'BinaryCrossentropy',
 'BinaryCrossentropy': 'BinaryCrossentropy',
 'BinaryFocalCrossentropy': 'BinaryFocalCrossentropy',
 'CTC': 'CTC',
 'CategoricalCrossentropy': 'CategoricalCrossentropy',
 'CategoricalFocalCrossentropy': 'CategoricalFocalCrossentropy',
 'CategoricalHinge': 'CategoricalHinge',
 'Circle': 'Circle',
 'CosineSimilarity': 'CosineSimilarity',
 'Dice': 'Dice',
 'Hinge': 'Hinge',
 'Huber': 'Huber',
 'KLD': 'KLDivergence',
 'KLDivergence': 'KLDivergence',
 'LogCosh': 'LogCosh',
 'MAE': 'MeanAbsoluteError',
 'MAPE': 'MeanAbsolutePercentageError',
 'MSE': 'MeanSquaredError',
 'MSLE': 'MeanSquaredLogarithmicError',
 'MeanAbsoluteError': 'MeanAbsoluteError',
 'MeanAbsolutePercentageError': 'MeanAbsolutePercentageError',
 'MeanSquaredError': 'MeanSquaredError',
 'MeanSquaredLogarithmicError': 'MeanSquaredLogarithmicError',
 'Poisson': 'Poisson',
 'SparseCategoricalCrossentropy': 'SparseCategoricalCrossentropy',
 'SquaredHinge': 'SquaredHinge',
 'Tversky': 'Tversky',
 'bce': 'BinaryCrossentropy',
 'binary_crossentropy': 'BinaryCrossentropy',
 'binary_focal_crossentropy': 'BinaryFocalCrossentropy',
 'categorical_crossentropy': 'CategoricalCrossentropy',
 'categorical_focal_crossentropy': 'CategoricalFocalCrossentropy',
 'categorical_hinge': 'CategoricalHinge',
 'circle': 'Circle',
 'cosine_similarity': 'CosineSimilarity',
 'ctc': 'CTC',
 'dice': 'Dice',
 'hinge': 'Hinge',
 'huber': 'Huber',
 'kl_divergence': 'KLDivergence',
 'kld': 'KLDivergence',
 'log_cosh': 'LogCosh',
 'mae': 'MeanAbsoluteError',
 'mape': 'MeanAbsolutePercentageError',
 'mean_absolute_error': 'MeanAbsoluteError',
 'mean_absolute_percentage_error': 'MeanAbsolutePercentageError',
 'mean_squared_error': 'MeanSquaredError',
 'mean_squared_logarithmic_error': 'MeanSquaredLogarithmicError',
 'mse': 'MeanSquaredError',
 'msle': 'MeanSquaredLogarithmicError',
 'poisson': 'Poisson',
 'sparse_categorical_crossentropy': 'SparseCategoricalCrossentropy',
 'squared_hinge': 'SquaredHinge',
 'tversky': 'Tversky'}
LOSS_ARGUMENTS = {'BinaryCrossentropy': ('from_logits', 'label_smoothing', 'axis', 'reduction', 'name'),
 'BinaryFocalCrossentropy': ('apply_class_balancing', 'alpha', 'gamma', 'from_logits', 'label_smoothing', 'axis',
                             'reduction', 'name'),
 'CTC': ('reduction', 'name'),
 'CategoricalCrossentropy': ('from_logits', 'label_smoothing', 'axis', 'reduction', 'name'),
 'CategoricalFocalCrossentropy': ('alpha', 'gamma', 'from_logits', 'label_smoothing', 'axis', 'reduction', 'name'),
 'CategoricalHinge': ('reduction', 'name'),
 'Circle': ('gamma', 'margin', 'remove_diagonal', 'reduction', 'name'),
 'CosineSimilarity': ('axis', 'reduction', 'name'),
 'Dice': ('reduction', 'name', 'axis'),
 'Hinge': ('reduction', 'name'),
 'Huber': ('delta', 'reduction', 'name'),
 'KLDivergence': ('reduction', 'name'),
 'LogCosh': ('reduction', 'name'),
 'MeanAbsoluteError': ('reduction', 'name'),
 'MeanAbsolutePercentageError': ('reduction', 'name'),
 'MeanSquaredError': ('reduction', 'name'),
 'MeanSquaredLogarithmicError': ('reduction', 'name'),
 'Poisson': ('reduction', 'name'),
 'SparseCategoricalCrossentropy': ('from_logits', 'ignore_class', 'reduction', 'axis', 'name'),
 'SquaredHinge': ('reduction', 'name'),
 'Tversky': ('alpha', 'beta', 'reduction', 'name', 'axis')}
METRIC_CLASSES = {'AUC': 'AUC',
 'Accuracy': 'Accuracy',
 'BCE': 'BinaryCrossentropy',
 'BinaryAccuracy': 'BinaryAccuracy',
 'BinaryCrossentropy': 'BinaryCrossentropy',
 'BinaryIoU': 'BinaryIoU',
 'CategoricalAccuracy': 'CategoricalAccuracy',
 'CategoricalCrossentropy': 'CategoricalCrossentropy',
 'CategoricalHinge': 'CategoricalHinge',
 'ConcordanceCorrelation': 'ConcordanceCorrelation',
 'CosineSimilarity': 'CosineSimilarity',
 'F1Score': 'F1Score',
 'FBetaScore': 'FBetaScore',
 'FalseNegatives': 'FalseNegatives',
 'FalsePositives': 'FalsePositives',
 'Hinge': 'Hinge',
 'IoU': 'IoU',
 'KLDivergence': 'KLDivergence',
 'LogCoshError': 'LogCoshError',
 'MAE': 'MeanAbsoluteError',
 'MAPE': 'MeanAbsolutePercentageError',
 'MSE': 'MeanSquaredError',
 'MSLE': 'MeanSquaredLogarithmicError',
 'Mean': 'Mean',
 'MeanAbsoluteError': 'MeanAbsoluteError',
 'MeanAbsolutePercentageError': 'MeanAbsolutePercentageError',
 'MeanIoU': 'MeanIoU',
 'MeanSquaredError': 'MeanSquaredError',
 'MeanSquaredLogarithmicError': 'MeanSquaredLogarithmicError',
 'OneHotIoU': 'OneHotIoU',
 'OneHotMeanIoU': 'OneHotMeanIoU',
 'PearsonCorrelation': 'PearsonCorrelation',
 'Poisson': 'Poisson',
 'Precision': 'Precision',
 'PrecisionAtRecall': 'PrecisionAtRecall',
 'R2Score': 'R2Score',
 'Recall': 'Recall',
 'RecallAtPrecision': 'RecallAtPrecision',
 'RootMeanSquaredError': 'RootMeanSquaredError',
 'SensitivityAtSpecificity': 'SensitivityAtSpecificity',
 'SparseCategoricalAccuracy': 'SparseCategoricalAccuracy',
 'SparseCategoricalCrossentropy': 'SparseCategoricalCrossentropy',
 'SparseTopKCategoricalAccuracy': 'SparseTopKCategoricalAccuracy',
 'SpecificityAtSensitivity': 'SpecificityAtSensitivity',
 'SquaredHinge': 'SquaredHinge',
 'Sum': 'Sum',
 'TopKCategoricalAccuracy': 'TopKCategoricalAccuracy',
 'TrueNegatives': 'TrueNegatives',
 'TruePositives': 'TruePositives',
 'accuracy': 'Accuracy',
 'auc': 'AUC',
 'bce': 'BinaryCrossentropy',
 'binary_accuracy': 'BinaryAccuracy',
 'binary_crossentropy': 'BinaryCrossentropy',
 'binary_io_u': 'BinaryIoU',
 'categorical_accuracy': 'CategoricalAccuracy',
 'categorical_crossentropy': 'CategoricalCrossentropy',
 'categorical_hinge': 'CategoricalHinge',
 'concordance_correlation': 'ConcordanceCorrelation',
 'cosine_similarity': 'CosineSimilarity',
 'f1_score': 'F1Score',
 'f_beta_score': 'FBetaScore',
 'false_negatives': 'FalseNegatives',
 'false_positives': 'FalsePositives',
 'hinge': 'Hinge',
 'io_u': 'IoU',
 'kl_divergence': 'KLDivergence',
 'log_cosh_error': 'LogCoshError',
 'mae': 'MeanAbsoluteError',
 'mape': 'MeanAbsolutePercentageError',
 'mean': 'Mean',
 'mean_absolute_error': 'MeanAbsoluteError',
 'mean_absolute_percentage_error': 'MeanAbsolutePercentageError',
 'mean_io_u': 'MeanIoU',
 'mean_squared_error': 'MeanSquaredError',
 'mean_squared_logarithmic_error': 'MeanSquaredLogarithmicError',
 'mse': 'MeanSquaredError',
 'msle': 'MeanSquaredLogarithmicError',
 'one_hot_io_u': 'OneHotIoU',
 'one_hot_mean_io_u': 'OneHotMeanIoU',
 'pearson_correlation': 'PearsonCorrelation',
 'poisson': 'Poisson',
 'precision': 'Precision',
 'precision_at_recall': 'PrecisionAtRecall',
 'r2_score': 'R2Score',
 'recall': 'Recall',
 'recall_at_precision': 'RecallAtPrecision',
 'root_mean_squared_error': 'RootMeanSquaredError',
 'sensitivity_at_specificity': 'SensitivityAtSpecificity',
 'sparse_categorical_accuracy': 'SparseCategoricalAccuracy',
 'sparse_categorical_crossentropy': 'SparseCategoricalCrossentropy',
 'sparse_top_k_categorical_accuracy': 'SparseTopKCategoricalAccuracy',
 'specificity_at_sensitivity': 'SpecificityAtSensitivity',
 'squared_hinge': 'SquaredHinge',
 'sum': 'Sum',
 'top_k_categorical_accuracy': 'TopKCategoricalAccuracy',
 'true_negatives': 'TrueNegatives',
 'true_positives': 'TruePositives'}
METRIC_ARGUMENTS = {'AUC': ('num_thresholds', 'curve', 'summation_method', 'name', 'thresholds', 'multi_label', 'num_labels',
         'label_weights', 'from_logits'),
 'Accuracy': ('name',),
 'BinaryAccuracy': ('name', 'threshold'),
 'BinaryCrossentropy': ('name', 'from_logits', 'label_smoothing'),
 'BinaryIoU': ('target_class_ids', 'threshold', 'name'),
 'CategoricalAccuracy': ('name',),
 'CategoricalCrossentropy': ('name', 'from_logits', 'label_smoothing', 'axis'),
 'CategoricalHinge': ('name',),
 'ConcordanceCorrelation': ('name', 'axis'),
 'CosineSimilarity': ('name', 'axis'),
 'F1Score': ('average', 'threshold', 'name'),
 'FBetaScore': ('average', 'beta', 'threshold', 'name'),
 'FalseNegatives': ('thresholds', 'name'),
 'FalsePositives': ('thresholds', 'name'),
 'Hinge': ('name',),
 'IoU': ('num_classes', 'target_class_ids', 'name', 'ignore_class', 'sparse_y_true', 'sparse_y_pred', 'axis'),
 'KLDivergence': ('name',),
 'LogCoshError': ('name',),
 'Mean': ('name',),
 'MeanAbsoluteError': ('name',),
 'MeanAbsolutePercentageError': ('name',),
 'MeanIoU': ('num_classes', 'name', 'ignore_class', 'sparse_y_true', 'sparse_y_pred', 'axis'),
 'MeanSquaredError': ('name',),
 'MeanSquaredLogarithmicError': ('name',),
 'OneHotIoU': ('num_classes', 'target_class_ids', 'name', 'ignore_class', 'sparse_y_pred', 'axis'),
 'OneHotMeanIoU': ('num_classes', 'name', 'ignore_class', 'sparse_y_pred', 'axis'),
 'PearsonCorrelation': ('name', 'axis'),
 'Poisson': ('name',),
 'Precision': ('thresholds', 'top_k', 'class_id', 'name'),
 'PrecisionAtRecall': ('recall', 'num_thresholds', 'class_id', 'name'),
 'R2Score': ('class_aggregation', 'num_regressors', 'name'),
 'Recall': ('thresholds', 'top_k', 'class_id', 'name'),
 'RecallAtPrecision': ('precision', 'num_thresholds', 'class_id', 'name'),
 'RootMeanSquaredError': ('name',),
 'SensitivityAtSpecificity': ('specificity', 'num_thresholds', 'class_id', 'name'),
 'SparseCategoricalAccuracy': ('name',),
 'SparseCategoricalCrossentropy': ('name', 'from_logits', 'ignore_class', 'axis'),
 'SparseTopKCategoricalAccuracy': ('k', 'name', 'from_sorted_ids'),
 'SpecificityAtSensitivity': ('sensitivity', 'num_thresholds', 'class_id', 'name'),
 'SquaredHinge': ('name',),
 'Sum': ('name',),
 'TopKCategoricalAccuracy': ('k', 'name'),
 'TrueNegatives': ('thresholds', 'name'),
 'TruePositives': ('thresholds', 'name')}

METRIC_REQUIRED = {
    "IoU": ("num_classes", "target_class_ids"), "MeanIoU": ("num_classes",),
    "OneHotIoU": ("num_classes", "target_class_ids"), "OneHotMeanIoU": ("num_classes",),
    "PrecisionAtRecall": ("recall",), "RecallAtPrecision": ("precision",),
    "SensitivityAtSpecificity": ("specificity",), "SpecificityAtSensitivity": ("sensitivity",),
}

# `compile` resolves these names itself from the target (keras/src/trainers/
# compile_utils.py), so they stand for no one class and take no arguments.
COMPILE_RESOLVED = ("accuracy", "acc", "crossentropy", "ce")

_BOOL = ("from_logits", "apply_class_balancing", "multi_label", "remove_diagonal", "sparse_y_true",
         "sparse_y_pred", "from_sorted_ids")
_FRACTION = ("label_smoothing", "threshold", "recall", "precision", "specificity", "sensitivity")
_NON_NEGATIVE = ("gamma", "delta", "margin", "beta")
_INT = ("axis", "k", "top_k", "class_id", "num_classes", "num_labels", "ignore_class", "num_regressors")
_CHOICES = {
    "reduction": (None, "none", "sum", "sum_over_batch_size", "mean", "mean_with_sample_weight"),
    "curve": ("ROC", "PR"),
    "summation_method": ("interpolation", "minoring", "majoring"),
    "average": (None, "micro", "macro", "weighted"),
    "class_aggregation": (None, "uniform_average", "variance_weighted_average"),
}


def argument_problem(name: str, value: Any) -> tuple[str, str] | None:
    """(expected, received) when `value` cannot be argument `name`, else None.

    Checks the arguments whose type or range Keras fixes; the others reach the
    Keras constructor as written.
    """
    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if name in _BOOL and not isinstance(value, bool):
        return "true or false", repr(value)
    if name in _FRACTION and not (number(value) and 0 <= value <= 1):
        return "a number in [0, 1]", repr(value)
    if name == "alpha" and not (number(value) and value >= 0):
        return "a number >= 0", repr(value)
    if name in _NON_NEGATIVE and not (number(value) and value >= 0):
        return "a number >= 0", repr(value)
    if name in _INT and not (isinstance(value, int) and not isinstance(value, bool)):
        return "an integer", repr(value)
    if name == "num_thresholds" and not (isinstance(value, int) and not isinstance(value, bool) and value > 1):
        return "an integer > 1", repr(value)
    if name == "thresholds":
        values = value if isinstance(value, list) else [value]
        if value is not None and not all(number(v) and 0 <= v <= 1 for v in values):
            return "a number in [0, 1] or a list of them", repr(value)
    if name in _CHOICES and value not in _CHOICES[name]:
        return "one of " + ", ".join("null" if c is None else c for c in _CHOICES[name]), repr(value)
    if name == "name" and not (isinstance(value, str) and value):
        return "a non-empty string", repr(value)
    return None
