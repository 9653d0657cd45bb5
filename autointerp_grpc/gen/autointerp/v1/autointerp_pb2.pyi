from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreFuzzDetectionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORE_FUZZ_DETECTION_TYPE_UNSPECIFIED: _ClassVar[ScoreFuzzDetectionType]
    FUZZ: _ClassVar[ScoreFuzzDetectionType]
    DETECTION: _ClassVar[ScoreFuzzDetectionType]

class MethodKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METHOD_KIND_UNSPECIFIED: _ClassVar[MethodKind]
    METHOD_KIND_EXPLAINER: _ClassVar[MethodKind]
    METHOD_KIND_SCORER: _ClassVar[MethodKind]
SCORE_FUZZ_DETECTION_TYPE_UNSPECIFIED: ScoreFuzzDetectionType
FUZZ: ScoreFuzzDetectionType
DETECTION: ScoreFuzzDetectionType
METHOD_KIND_UNSPECIFIED: MethodKind
METHOD_KIND_EXPLAINER: MethodKind
METHOD_KIND_SCORER: MethodKind
PARAMETER_FIELD_NUMBER: _ClassVar[int]
parameter: _descriptor.FieldDescriptor

class ParameterSpec(_message.Message):
    __slots__ = ("minimum", "maximum", "default_value", "allowed")
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    minimum: float
    maximum: float
    default_value: str
    allowed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, minimum: _Optional[float] = ..., maximum: _Optional[float] = ..., default_value: _Optional[str] = ..., allowed: _Optional[_Iterable[str]] = ...) -> None: ...

class Activation(_message.Message):
    __slots__ = ("tokens", "values")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, tokens: _Optional[_Iterable[str]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class AttentionRecord(_message.Message):
    __slots__ = ("tokens", "from_index", "weights")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    FROM_INDEX_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    from_index: int
    weights: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, tokens: _Optional[_Iterable[str]] = ..., from_index: _Optional[int] = ..., weights: _Optional[_Iterable[float]] = ...) -> None: ...

class ExplainDefaultRequest(_message.Message):
    __slots__ = ("activations", "openrouter_key", "model")
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    OPENROUTER_KEY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    activations: _containers.RepeatedCompositeFieldContainer[Activation]
    openrouter_key: str
    model: str
    def __init__(self, activations: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ..., openrouter_key: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ExplainDefaultResponse(_message.Message):
    __slots__ = ("explanation",)
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    explanation: str
    def __init__(self, explanation: _Optional[str] = ...) -> None: ...

class ScoreEmbeddingRequest(_message.Message):
    __slots__ = ("activations", "explanation")
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    activations: _containers.RepeatedCompositeFieldContainer[Activation]
    explanation: str
    def __init__(self, activations: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ..., explanation: _Optional[str] = ...) -> None: ...

class ScoreEmbeddingBreakdownItem(_message.Message):
    __slots__ = ("text", "distance", "similarity")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    text: str
    distance: int
    similarity: float
    def __init__(self, text: _Optional[str] = ..., distance: _Optional[int] = ..., similarity: _Optional[float] = ...) -> None: ...

class ScoreEmbeddingResponse(_message.Message):
    __slots__ = ("score", "breakdown")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    score: float
    breakdown: _containers.RepeatedCompositeFieldContainer[ScoreEmbeddingBreakdownItem]
    def __init__(self, score: _Optional[float] = ..., breakdown: _Optional[_Iterable[_Union[ScoreEmbeddingBreakdownItem, _Mapping]]] = ...) -> None: ...

class ScoreFuzzDetectionRequest(_message.Message):
    __slots__ = ("activations", "explanation", "openrouter_key", "model", "type")
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    OPENROUTER_KEY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    activations: _containers.RepeatedCompositeFieldContainer[Activation]
    explanation: str
    openrouter_key: str
    model: str
    type: ScoreFuzzDetectionType
    def __init__(self, activations: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ..., explanation: _Optional[str] = ..., openrouter_key: _Optional[str] = ..., model: _Optional[str] = ..., type: _Optional[_Union[ScoreFuzzDetectionType, str]] = ...) -> None: ...

class ScoreFuzzDetectionBreakdownItem(_message.Message):
    __slots__ = ("str_tokens", "activations", "distance", "ground_truth", "prediction", "highlighted", "probability", "correct")
    STR_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    HIGHLIGHTED_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    str_tokens: _containers.RepeatedScalarFieldContainer[str]
    activations: _containers.RepeatedScalarFieldContainer[float]
    distance: int
    ground_truth: bool
    prediction: bool
    highlighted: bool
    probability: float
    correct: bool
    def __init__(self, str_tokens: _Optional[_Iterable[str]] = ..., activations: _Optional[_Iterable[float]] = ..., distance: _Optional[int] = ..., ground_truth: _Optional[bool] = ..., prediction: _Optional[bool] = ..., highlighted: _Optional[bool] = ..., probability: _Optional[float] = ..., correct: _Optional[bool] = ...) -> None: ...

class ScoreFuzzDetectionResponse(_message.Message):
    __slots__ = ("score", "breakdown")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    score: float
    breakdown: _containers.RepeatedCompositeFieldContainer[ScoreFuzzDetectionBreakdownItem]
    def __init__(self, score: _Optional[float] = ..., breakdown: _Optional[_Iterable[_Union[ScoreFuzzDetectionBreakdownItem, _Mapping]]] = ...) -> None: ...

class ErrorResponse(_message.Message):
    __slots__ = ("detail", "code")
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    detail: str
    code: str
    def __init__(self, detail: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class LlmOptions(_message.Message):
    __slots__ = ("model", "api_key", "provider", "max_tokens", "reasoning_effort", "fresh", "dry_run", "batch")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_EFFORT_FIELD_NUMBER: _ClassVar[int]
    FRESH_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    model: str
    api_key: str
    provider: str
    max_tokens: int
    reasoning_effort: str
    fresh: bool
    dry_run: bool
    batch: bool
    def __init__(self, model: _Optional[str] = ..., api_key: _Optional[str] = ..., provider: _Optional[str] = ..., max_tokens: _Optional[int] = ..., reasoning_effort: _Optional[str] = ..., fresh: _Optional[bool] = ..., dry_run: _Optional[bool] = ..., batch: _Optional[bool] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("llm_calls", "prompt_tokens", "completion_tokens", "cost", "cached_responses", "cached_prompt_tokens", "saved_cost", "estimated")
    LLM_CALLS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    CACHED_RESPONSES_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SAVED_COST_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cached_responses: int
    cached_prompt_tokens: int
    saved_cost: float
    estimated: bool
    def __init__(self, llm_calls: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cost: _Optional[float] = ..., cached_responses: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., saved_cost: _Optional[float] = ..., estimated: _Optional[bool] = ...) -> None: ...

class DefaultExplainerParams(_message.Message):
    __slots__ = ("threshold", "show_activations", "chain_of_thought")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SHOW_ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    CHAIN_OF_THOUGHT_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    show_activations: bool
    chain_of_thought: bool
    def __init__(self, threshold: _Optional[float] = ..., show_activations: _Optional[bool] = ..., chain_of_thought: _Optional[bool] = ...) -> None: ...

class ContrastiveExplainerParams(_message.Message):
    __slots__ = ("threshold", "show_activations", "max_examples", "max_non_activating")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SHOW_ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    MAX_NON_ACTIVATING_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    show_activations: bool
    max_examples: int
    max_non_activating: int
    def __init__(self, threshold: _Optional[float] = ..., show_activations: _Optional[bool] = ..., max_examples: _Optional[int] = ..., max_non_activating: _Optional[int] = ...) -> None: ...

class OaiTokenActPairParams(_message.Message):
    __slots__ = ("max_records",)
    MAX_RECORDS_FIELD_NUMBER: _ClassVar[int]
    max_records: int
    def __init__(self, max_records: _Optional[int] = ...) -> None: ...

class NpMaxActParams(_message.Message):
    __slots__ = ("top_tokens", "top_texts", "window", "next_tokens")
    TOP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOP_TEXTS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    NEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    top_tokens: int
    top_texts: int
    window: int
    next_tokens: int
    def __init__(self, top_tokens: _Optional[int] = ..., top_texts: _Optional[int] = ..., window: _Optional[int] = ..., next_tokens: _Optional[int] = ...) -> None: ...

class OaiAttentionHeadParams(_message.Message):
    __slots__ = ("max_records",)
    MAX_RECORDS_FIELD_NUMBER: _ClassVar[int]
    max_records: int
    def __init__(self, max_records: _Optional[int] = ...) -> None: ...

class NpActsLogitsGeneralParams(_message.Message):
    __slots__ = ("top_texts", "window")
    TOP_TEXTS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    top_texts: int
    window: int
    def __init__(self, top_texts: _Optional[int] = ..., window: _Optional[int] = ...) -> None: ...

class PythonCodeParams(_message.Message):
    __slots__ = ("top_texts", "window")
    TOP_TEXTS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    top_texts: int
    window: int
    def __init__(self, top_texts: _Optional[int] = ..., window: _Optional[int] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("method", "activations", "non_activating", "top_positive_logits", "llm", "attention", "default_params", "contrastive_params", "oai_token_act_pair_params", "np_max_act_params", "np_max_act_logits_params", "oai_attention_head_params", "np_acts_logits_general_params", "python_code_params")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    NON_ACTIVATING_FIELD_NUMBER: _ClassVar[int]
    TOP_POSITIVE_LOGITS_FIELD_NUMBER: _ClassVar[int]
    LLM_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    CONTRASTIVE_PARAMS_FIELD_NUMBER: _ClassVar[int]
    OAI_TOKEN_ACT_PAIR_PARAMS_FIELD_NUMBER: _ClassVar[int]
    NP_MAX_ACT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    NP_MAX_ACT_LOGITS_PARAMS_FIELD_NUMBER: _ClassVar[int]
    OAI_ATTENTION_HEAD_PARAMS_FIELD_NUMBER: _ClassVar[int]
    NP_ACTS_LOGITS_GENERAL_PARAMS_FIELD_NUMBER: _ClassVar[int]
    PYTHON_CODE_PARAMS_FIELD_NUMBER: _ClassVar[int]
    method: str
    activations: _containers.RepeatedCompositeFieldContainer[Activation]
    non_activating: _containers.RepeatedCompositeFieldContainer[Activation]
    top_positive_logits: _containers.RepeatedScalarFieldContainer[str]
    llm: LlmOptions
    attention: _containers.RepeatedCompositeFieldContainer[AttentionRecord]
    default_params: DefaultExplainerParams
    contrastive_params: ContrastiveExplainerParams
    oai_token_act_pair_params: OaiTokenActPairParams
    np_max_act_params: NpMaxActParams
    np_max_act_logits_params: NpMaxActParams
    oai_attention_head_params: OaiAttentionHeadParams
    np_acts_logits_general_params: NpActsLogitsGeneralParams
    python_code_params: PythonCodeParams
    def __init__(self, method: _Optional[str] = ..., activations: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ..., non_activating: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ..., top_positive_logits: _Optional[_Iterable[str]] = ..., llm: _Optional[_Union[LlmOptions, _Mapping]] = ..., attention: _Optional[_Iterable[_Union[AttentionRecord, _Mapping]]] = ..., default_params: _Optional[_Union[DefaultExplainerParams, _Mapping]] = ..., contrastive_params: _Optional[_Union[ContrastiveExplainerParams, _Mapping]] = ..., oai_token_act_pair_params: _Optional[_Union[OaiTokenActPairParams, _Mapping]] = ..., np_max_act_params: _Optional[_Union[NpMaxActParams, _Mapping]] = ..., np_max_act_logits_params: _Optional[_Union[NpMaxActParams, _Mapping]] = ..., oai_attention_head_params: _Optional[_Union[OaiAttentionHeadParams, _Mapping]] = ..., np_acts_logits_general_params: _Optional[_Union[NpActsLogitsGeneralParams, _Mapping]] = ..., python_code_params: _Optional[_Union[PythonCodeParams, _Mapping]] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("explanation", "raw_answer", "usage", "method")
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    RAW_ANSWER_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    explanation: str
    raw_answer: str
    usage: Usage
    method: str
    def __init__(self, explanation: _Optional[str] = ..., raw_answer: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., method: _Optional[str] = ...) -> None: ...

class ClassifierScorerParams(_message.Message):
    __slots__ = ("examples_per_prompt", "use_logprobs", "seed")
    EXAMPLES_PER_PROMPT_FIELD_NUMBER: _ClassVar[int]
    USE_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    examples_per_prompt: int
    use_logprobs: bool
    seed: int
    def __init__(self, examples_per_prompt: _Optional[int] = ..., use_logprobs: _Optional[bool] = ..., seed: _Optional[int] = ...) -> None: ...

class EmbeddingScorerParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SimulationScorerParams(_message.Message):
    __slots__ = ("structured_output", "mode")
    STRUCTURED_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    structured_output: bool
    mode: str
    def __init__(self, structured_output: _Optional[bool] = ..., mode: _Optional[str] = ...) -> None: ...

class IntruderScorerParams(_message.Message):
    __slots__ = ("examples_per_prompt", "chain_of_thought", "seed")
    EXAMPLES_PER_PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHAIN_OF_THOUGHT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    examples_per_prompt: int
    chain_of_thought: bool
    seed: int
    def __init__(self, examples_per_prompt: _Optional[int] = ..., chain_of_thought: _Optional[bool] = ..., seed: _Optional[int] = ...) -> None: ...

class ExampleEmbeddingScorerParams(_message.Message):
    __slots__ = ("batches", "seed")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    batches: int
    seed: int
    def __init__(self, batches: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class RecallScorerParams(_message.Message):
    __slots__ = ("examples_per_prompt", "include_decoys", "seed")
    EXAMPLES_PER_PROMPT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DECOYS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    examples_per_prompt: int
    include_decoys: bool
    seed: int
    def __init__(self, examples_per_prompt: _Optional[int] = ..., include_decoys: _Optional[bool] = ..., seed: _Optional[int] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("method", "explanation", "activations", "llm", "min_answered", "control_explanation", "detection_params", "fuzz_params", "embedding_params", "simulation_params", "intruder_params", "example_embedding_params", "recall_params")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    LLM_FIELD_NUMBER: _ClassVar[int]
    MIN_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    CONTROL_EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    DETECTION_PARAMS_FIELD_NUMBER: _ClassVar[int]
    FUZZ_PARAMS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_PARAMS_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_PARAMS_FIELD_NUMBER: _ClassVar[int]
    INTRUDER_PARAMS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_EMBEDDING_PARAMS_FIELD_NUMBER: _ClassVar[int]
    RECALL_PARAMS_FIELD_NUMBER: _ClassVar[int]
    method: str
    explanation: str
    activations: _containers.RepeatedCompositeFieldContainer[Activation]
    llm: LlmOptions
    min_answered: float
    control_explanation: str
    detection_params: ClassifierScorerParams
    fuzz_params: ClassifierScorerParams
    embedding_params: EmbeddingScorerParams
    simulation_params: SimulationScorerParams
    intruder_params: IntruderScorerParams
    example_embedding_params: ExampleEmbeddingScorerParams
    recall_params: RecallScorerParams
    def __init__(self, method: _Optional[str] = ..., explanation: _Optional[str] = ..., activations: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ..., llm: _Optional[_Union[LlmOptions, _Mapping]] = ..., min_answered: _Optional[float] = ..., control_explanation: _Optional[str] = ..., detection_params: _Optional[_Union[ClassifierScorerParams, _Mapping]] = ..., fuzz_params: _Optional[_Union[ClassifierScorerParams, _Mapping]] = ..., embedding_params: _Optional[_Union[EmbeddingScorerParams, _Mapping]] = ..., simulation_params: _Optional[_Union[SimulationScorerParams, _Mapping]] = ..., intruder_params: _Optional[_Union[IntruderScorerParams, _Mapping]] = ..., example_embedding_params: _Optional[_Union[ExampleEmbeddingScorerParams, _Mapping]] = ..., recall_params: _Optional[_Union[RecallScorerParams, _Mapping]] = ...) -> None: ...

class ConfidenceInterval(_message.Message):
    __slots__ = ("lower", "upper", "level", "resamples")
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    RESAMPLES_FIELD_NUMBER: _ClassVar[int]
    lower: float
    upper: float
    level: float
    resamples: int
    def __init__(self, lower: _Optional[float] = ..., upper: _Optional[float] = ..., level: _Optional[float] = ..., resamples: _Optional[int] = ...) -> None: ...

class Coverage(_message.Message):
    __slots__ = ("answered", "total", "activating_answered", "activating_total", "non_activating_answered", "non_activating_total")
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ACTIVATING_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    ACTIVATING_TOTAL_FIELD_NUMBER: _ClassVar[int]
    NON_ACTIVATING_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    NON_ACTIVATING_TOTAL_FIELD_NUMBER: _ClassVar[int]
    answered: int
    total: int
    activating_answered: int
    activating_total: int
    non_activating_answered: int
    non_activating_total: int
    def __init__(self, answered: _Optional[int] = ..., total: _Optional[int] = ..., activating_answered: _Optional[int] = ..., activating_total: _Optional[int] = ..., non_activating_answered: _Optional[int] = ..., non_activating_total: _Optional[int] = ...) -> None: ...

class ClassifierMetrics(_message.Message):
    __slots__ = ("balanced_accuracy", "accuracy", "precision", "recall", "f1", "auc", "true_positives", "true_negatives", "false_positives", "false_negatives", "answered", "unanswered")
    BALANCED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    AUC_FIELD_NUMBER: _ClassVar[int]
    TRUE_POSITIVES_FIELD_NUMBER: _ClassVar[int]
    TRUE_NEGATIVES_FIELD_NUMBER: _ClassVar[int]
    FALSE_POSITIVES_FIELD_NUMBER: _ClassVar[int]
    FALSE_NEGATIVES_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    UNANSWERED_FIELD_NUMBER: _ClassVar[int]
    balanced_accuracy: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    auc: float
    true_positives: int
    true_negatives: int
    false_positives: int
    false_negatives: int
    answered: int
    unanswered: int
    def __init__(self, balanced_accuracy: _Optional[float] = ..., accuracy: _Optional[float] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., f1: _Optional[float] = ..., auc: _Optional[float] = ..., true_positives: _Optional[int] = ..., true_negatives: _Optional[int] = ..., false_positives: _Optional[int] = ..., false_negatives: _Optional[int] = ..., answered: _Optional[int] = ..., unanswered: _Optional[int] = ...) -> None: ...

class ScoreBreakdownItem(_message.Message):
    __slots__ = ("record_index", "text", "str_tokens", "activating", "prediction", "correct", "probability", "similarity", "correlation", "predicted_activations", "intruder_index", "predicted_index", "delta_positive", "delta_negative", "decoy")
    RECORD_INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STR_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ACTIVATING_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    INTRUDER_INDEX_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_INDEX_FIELD_NUMBER: _ClassVar[int]
    DELTA_POSITIVE_FIELD_NUMBER: _ClassVar[int]
    DELTA_NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    DECOY_FIELD_NUMBER: _ClassVar[int]
    record_index: int
    text: str
    str_tokens: _containers.RepeatedScalarFieldContainer[str]
    activating: bool
    prediction: bool
    correct: bool
    probability: float
    similarity: float
    correlation: float
    predicted_activations: _containers.RepeatedScalarFieldContainer[float]
    intruder_index: int
    predicted_index: int
    delta_positive: float
    delta_negative: float
    decoy: bool
    def __init__(self, record_index: _Optional[int] = ..., text: _Optional[str] = ..., str_tokens: _Optional[_Iterable[str]] = ..., activating: _Optional[bool] = ..., prediction: _Optional[bool] = ..., correct: _Optional[bool] = ..., probability: _Optional[float] = ..., similarity: _Optional[float] = ..., correlation: _Optional[float] = ..., predicted_activations: _Optional[_Iterable[float]] = ..., intruder_index: _Optional[int] = ..., predicted_index: _Optional[int] = ..., delta_positive: _Optional[float] = ..., delta_negative: _Optional[float] = ..., decoy: _Optional[bool] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("score", "metric", "method", "breakdown", "usage", "classifier", "confidence_interval", "notes", "chance", "coverage", "extra_metrics", "control")
    class ExtraMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SCORE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    CHANCE_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_METRICS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    score: float
    metric: str
    method: str
    breakdown: _containers.RepeatedCompositeFieldContainer[ScoreBreakdownItem]
    usage: Usage
    classifier: ClassifierMetrics
    confidence_interval: ConfidenceInterval
    notes: _containers.RepeatedScalarFieldContainer[str]
    chance: float
    coverage: Coverage
    extra_metrics: _containers.ScalarMap[str, float]
    control: ControlScore
    def __init__(self, score: _Optional[float] = ..., metric: _Optional[str] = ..., method: _Optional[str] = ..., breakdown: _Optional[_Iterable[_Union[ScoreBreakdownItem, _Mapping]]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., classifier: _Optional[_Union[ClassifierMetrics, _Mapping]] = ..., confidence_interval: _Optional[_Union[ConfidenceInterval, _Mapping]] = ..., notes: _Optional[_Iterable[str]] = ..., chance: _Optional[float] = ..., coverage: _Optional[_Union[Coverage, _Mapping]] = ..., extra_metrics: _Optional[_Mapping[str, float]] = ..., control: _Optional[_Union[ControlScore, _Mapping]] = ...) -> None: ...

class ControlScore(_message.Message):
    __slots__ = ("score", "confidence_interval", "coverage", "notes")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    score: float
    confidence_interval: ConfidenceInterval
    coverage: Coverage
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, score: _Optional[float] = ..., confidence_interval: _Optional[_Union[ConfidenceInterval, _Mapping]] = ..., coverage: _Optional[_Union[Coverage, _Mapping]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class ListMethodsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MethodRequirements(_message.Message):
    __slots__ = ("llm", "embedding_model", "non_activating", "logits", "logprobs", "explanation", "attention")
    LLM_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    NON_ACTIVATING_FIELD_NUMBER: _ClassVar[int]
    LOGITS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    llm: bool
    embedding_model: bool
    non_activating: bool
    logits: bool
    logprobs: bool
    explanation: bool
    attention: bool
    def __init__(self, llm: _Optional[bool] = ..., embedding_model: _Optional[bool] = ..., non_activating: _Optional[bool] = ..., logits: _Optional[bool] = ..., logprobs: _Optional[bool] = ..., explanation: _Optional[bool] = ..., attention: _Optional[bool] = ...) -> None: ...

class ParameterInfo(_message.Message):
    __slots__ = ("name", "type", "default_value", "minimum", "maximum", "allowed", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    default_value: str
    minimum: float
    maximum: float
    allowed: _containers.RepeatedScalarFieldContainer[str]
    description: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., default_value: _Optional[str] = ..., minimum: _Optional[float] = ..., maximum: _Optional[float] = ..., allowed: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ...) -> None: ...

class MetricInfo(_message.Message):
    __slots__ = ("name", "minimum", "maximum", "chance")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    CHANCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    minimum: float
    maximum: float
    chance: float
    def __init__(self, name: _Optional[str] = ..., minimum: _Optional[float] = ..., maximum: _Optional[float] = ..., chance: _Optional[float] = ...) -> None: ...

class MethodInfo(_message.Message):
    __slots__ = ("name", "kind", "description", "requires", "parameters_field", "parameters", "metric", "controls")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CONTROLS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: MethodKind
    description: str
    requires: MethodRequirements
    parameters_field: str
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterInfo]
    metric: MetricInfo
    controls: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[MethodKind, str]] = ..., description: _Optional[str] = ..., requires: _Optional[_Union[MethodRequirements, _Mapping]] = ..., parameters_field: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[ParameterInfo, _Mapping]]] = ..., metric: _Optional[_Union[MetricInfo, _Mapping]] = ..., controls: _Optional[_Iterable[str]] = ...) -> None: ...

class ListMethodsResponse(_message.Message):
    __slots__ = ("methods", "providers")
    METHODS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    methods: _containers.RepeatedCompositeFieldContainer[MethodInfo]
    providers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, methods: _Optional[_Iterable[_Union[MethodInfo, _Mapping]]] = ..., providers: _Optional[_Iterable[str]] = ...) -> None: ...

class Feature(_message.Message):
    __slots__ = ("id", "activations", "non_activating", "top_positive_logits", "attention", "control_explanation")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    NON_ACTIVATING_FIELD_NUMBER: _ClassVar[int]
    TOP_POSITIVE_LOGITS_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    CONTROL_EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    activations: _containers.RepeatedCompositeFieldContainer[Activation]
    non_activating: _containers.RepeatedCompositeFieldContainer[Activation]
    top_positive_logits: _containers.RepeatedScalarFieldContainer[str]
    attention: _containers.RepeatedCompositeFieldContainer[AttentionRecord]
    control_explanation: str
    def __init__(self, id: _Optional[str] = ..., activations: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ..., non_activating: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ..., top_positive_logits: _Optional[_Iterable[str]] = ..., attention: _Optional[_Iterable[_Union[AttentionRecord, _Mapping]]] = ..., control_explanation: _Optional[str] = ...) -> None: ...

class ExplainerChoice(_message.Message):
    __slots__ = ("method", "default_params", "contrastive_params", "oai_token_act_pair_params", "np_max_act_params", "np_max_act_logits_params", "oai_attention_head_params", "np_acts_logits_general_params", "python_code_params")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    CONTRASTIVE_PARAMS_FIELD_NUMBER: _ClassVar[int]
    OAI_TOKEN_ACT_PAIR_PARAMS_FIELD_NUMBER: _ClassVar[int]
    NP_MAX_ACT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    NP_MAX_ACT_LOGITS_PARAMS_FIELD_NUMBER: _ClassVar[int]
    OAI_ATTENTION_HEAD_PARAMS_FIELD_NUMBER: _ClassVar[int]
    NP_ACTS_LOGITS_GENERAL_PARAMS_FIELD_NUMBER: _ClassVar[int]
    PYTHON_CODE_PARAMS_FIELD_NUMBER: _ClassVar[int]
    method: str
    default_params: DefaultExplainerParams
    contrastive_params: ContrastiveExplainerParams
    oai_token_act_pair_params: OaiTokenActPairParams
    np_max_act_params: NpMaxActParams
    np_max_act_logits_params: NpMaxActParams
    oai_attention_head_params: OaiAttentionHeadParams
    np_acts_logits_general_params: NpActsLogitsGeneralParams
    python_code_params: PythonCodeParams
    def __init__(self, method: _Optional[str] = ..., default_params: _Optional[_Union[DefaultExplainerParams, _Mapping]] = ..., contrastive_params: _Optional[_Union[ContrastiveExplainerParams, _Mapping]] = ..., oai_token_act_pair_params: _Optional[_Union[OaiTokenActPairParams, _Mapping]] = ..., np_max_act_params: _Optional[_Union[NpMaxActParams, _Mapping]] = ..., np_max_act_logits_params: _Optional[_Union[NpMaxActParams, _Mapping]] = ..., oai_attention_head_params: _Optional[_Union[OaiAttentionHeadParams, _Mapping]] = ..., np_acts_logits_general_params: _Optional[_Union[NpActsLogitsGeneralParams, _Mapping]] = ..., python_code_params: _Optional[_Union[PythonCodeParams, _Mapping]] = ...) -> None: ...

class ScorerChoice(_message.Message):
    __slots__ = ("method", "detection_params", "fuzz_params", "embedding_params", "simulation_params", "intruder_params", "example_embedding_params", "recall_params")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    DETECTION_PARAMS_FIELD_NUMBER: _ClassVar[int]
    FUZZ_PARAMS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_PARAMS_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_PARAMS_FIELD_NUMBER: _ClassVar[int]
    INTRUDER_PARAMS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_EMBEDDING_PARAMS_FIELD_NUMBER: _ClassVar[int]
    RECALL_PARAMS_FIELD_NUMBER: _ClassVar[int]
    method: str
    detection_params: ClassifierScorerParams
    fuzz_params: ClassifierScorerParams
    embedding_params: EmbeddingScorerParams
    simulation_params: SimulationScorerParams
    intruder_params: IntruderScorerParams
    example_embedding_params: ExampleEmbeddingScorerParams
    recall_params: RecallScorerParams
    def __init__(self, method: _Optional[str] = ..., detection_params: _Optional[_Union[ClassifierScorerParams, _Mapping]] = ..., fuzz_params: _Optional[_Union[ClassifierScorerParams, _Mapping]] = ..., embedding_params: _Optional[_Union[EmbeddingScorerParams, _Mapping]] = ..., simulation_params: _Optional[_Union[SimulationScorerParams, _Mapping]] = ..., intruder_params: _Optional[_Union[IntruderScorerParams, _Mapping]] = ..., example_embedding_params: _Optional[_Union[ExampleEmbeddingScorerParams, _Mapping]] = ..., recall_params: _Optional[_Union[RecallScorerParams, _Mapping]] = ...) -> None: ...

class BulkOptions(_message.Message):
    __slots__ = ("candidates", "candidate_scorer", "candidate_temperature", "holdout", "seed", "concurrency", "min_answered")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_SCORER_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    MIN_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    candidates: int
    candidate_scorer: str
    candidate_temperature: float
    holdout: float
    seed: int
    concurrency: int
    min_answered: float
    def __init__(self, candidates: _Optional[int] = ..., candidate_scorer: _Optional[str] = ..., candidate_temperature: _Optional[float] = ..., holdout: _Optional[float] = ..., seed: _Optional[int] = ..., concurrency: _Optional[int] = ..., min_answered: _Optional[float] = ...) -> None: ...

class ExplainAndScoreRequest(_message.Message):
    __slots__ = ("features", "explainer", "scorers", "llm", "options")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    EXPLAINER_FIELD_NUMBER: _ClassVar[int]
    SCORERS_FIELD_NUMBER: _ClassVar[int]
    LLM_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedCompositeFieldContainer[Feature]
    explainer: ExplainerChoice
    scorers: _containers.RepeatedCompositeFieldContainer[ScorerChoice]
    llm: LlmOptions
    options: BulkOptions
    def __init__(self, features: _Optional[_Iterable[_Union[Feature, _Mapping]]] = ..., explainer: _Optional[_Union[ExplainerChoice, _Mapping]] = ..., scorers: _Optional[_Iterable[_Union[ScorerChoice, _Mapping]]] = ..., llm: _Optional[_Union[LlmOptions, _Mapping]] = ..., options: _Optional[_Union[BulkOptions, _Mapping]] = ...) -> None: ...

class ScorerOutcome(_message.Message):
    __slots__ = ("method", "score", "metric", "confidence_interval", "error", "chance", "coverage", "notes", "extra_metrics", "control")
    class ExtraMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CHANCE_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    EXTRA_METRICS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    method: str
    score: float
    metric: str
    confidence_interval: ConfidenceInterval
    error: FeatureError
    chance: float
    coverage: Coverage
    notes: _containers.RepeatedScalarFieldContainer[str]
    extra_metrics: _containers.ScalarMap[str, float]
    control: ControlScore
    def __init__(self, method: _Optional[str] = ..., score: _Optional[float] = ..., metric: _Optional[str] = ..., confidence_interval: _Optional[_Union[ConfidenceInterval, _Mapping]] = ..., error: _Optional[_Union[FeatureError, _Mapping]] = ..., chance: _Optional[float] = ..., coverage: _Optional[_Union[Coverage, _Mapping]] = ..., notes: _Optional[_Iterable[str]] = ..., extra_metrics: _Optional[_Mapping[str, float]] = ..., control: _Optional[_Union[ControlScore, _Mapping]] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("explanation", "score")
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    explanation: str
    score: float
    def __init__(self, explanation: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class FeatureError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class FeatureResult(_message.Message):
    __slots__ = ("id", "explanation", "scores", "candidates", "train_records", "test_records", "usage", "error", "seconds", "in_sample", "validation_records", "notes", "validation_seen_records", "pending")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TRAIN_RECORDS_FIELD_NUMBER: _ClassVar[int]
    TEST_RECORDS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    IN_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_RECORDS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_SEEN_RECORDS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    explanation: str
    scores: _containers.RepeatedCompositeFieldContainer[ScorerOutcome]
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    train_records: int
    test_records: int
    usage: Usage
    error: FeatureError
    seconds: float
    in_sample: bool
    validation_records: int
    notes: _containers.RepeatedScalarFieldContainer[str]
    validation_seen_records: int
    pending: bool
    def __init__(self, id: _Optional[str] = ..., explanation: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[ScorerOutcome, _Mapping]]] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., train_records: _Optional[int] = ..., test_records: _Optional[int] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., error: _Optional[_Union[FeatureError, _Mapping]] = ..., seconds: _Optional[float] = ..., in_sample: _Optional[bool] = ..., validation_records: _Optional[int] = ..., notes: _Optional[_Iterable[str]] = ..., validation_seen_records: _Optional[int] = ..., pending: _Optional[bool] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("done", "total", "failed", "usage", "pending")
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    done: int
    total: int
    failed: int
    usage: Usage
    pending: int
    def __init__(self, done: _Optional[int] = ..., total: _Optional[int] = ..., failed: _Optional[int] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., pending: _Optional[int] = ...) -> None: ...

class BatchRound(_message.Message):
    __slots__ = ("collected_answers", "failed_requests", "submitted_requests", "submitted_batch_ids", "open_batches", "open_requests", "open_completed", "expected_wait_s", "notes", "collected_cost", "collected_prompt_tokens", "collected_completion_tokens")
    COLLECTED_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    FAILED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BATCH_IDS_FIELD_NUMBER: _ClassVar[int]
    OPEN_BATCHES_FIELD_NUMBER: _ClassVar[int]
    OPEN_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    OPEN_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_COST_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    collected_answers: int
    failed_requests: int
    submitted_requests: int
    submitted_batch_ids: _containers.RepeatedScalarFieldContainer[str]
    open_batches: int
    open_requests: int
    open_completed: int
    expected_wait_s: float
    notes: _containers.RepeatedScalarFieldContainer[str]
    collected_cost: float
    collected_prompt_tokens: int
    collected_completion_tokens: int
    def __init__(self, collected_answers: _Optional[int] = ..., failed_requests: _Optional[int] = ..., submitted_requests: _Optional[int] = ..., submitted_batch_ids: _Optional[_Iterable[str]] = ..., open_batches: _Optional[int] = ..., open_requests: _Optional[int] = ..., open_completed: _Optional[int] = ..., expected_wait_s: _Optional[float] = ..., notes: _Optional[_Iterable[str]] = ..., collected_cost: _Optional[float] = ..., collected_prompt_tokens: _Optional[int] = ..., collected_completion_tokens: _Optional[int] = ...) -> None: ...

class ExplainAndScoreEvent(_message.Message):
    __slots__ = ("result", "progress", "batch")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    result: FeatureResult
    progress: Progress
    batch: BatchRound
    def __init__(self, result: _Optional[_Union[FeatureResult, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., batch: _Optional[_Union[BatchRound, _Mapping]] = ...) -> None: ...
