// One description of a configuration struct's fields, read by everything that lists them: the
// checkpoint header (written and read), the Python binding (attributes, dicts, docstrings) and
// Python's NETWORK_DEFAULTS / TRAINING_DEFAULTS. Each struct lists its fields once, in an X-macro
// next to its definition (sage_config.h, train.h); a new hyperparameter is one line there.
//
// The X-macro's columns are X(type, name, default value, role, doc). Code visits the fields with
// `Struct::for_each_field(visit)`, which calls `visit(Field<Struct, T>{...})` for each in order
// (the order of the checkpoint's JSON).
#pragma once

namespace perfsage {

// Who sets a field.
enum class FieldRole {
  kHyperparameter,  // the user, through Predictor(**hyperparameters); Python lists its default
  kDerived,         // perfsage, from the data: the feature schema, the number of targets
  kFixed,           // the caller of one training run (epochs, threads), or an internal constant
};

template <typename Struct, typename T>
struct Field {
  using Type = T;
  const char* name;
  T Struct::*member;
  FieldRole role;
  const char* doc;
};

}  // namespace perfsage

// Inside a struct: declares its members from its field X-macro and defines for_each_field.
#define PERFSAGE_FIELD_MEMBER(type, name, value, role, doc) type name = value;
#define PERFSAGE_FIELD_VISIT(type, name, value, role, doc)                                   \
  visit(::perfsage::Field<Self, type>{#name, &Self::name, ::perfsage::FieldRole::role, doc});
#define PERFSAGE_DECLARE_FIELDS(Struct, FIELDS)                 \
  FIELDS(PERFSAGE_FIELD_MEMBER)                                 \
  template <typename Visit>                                     \
  static void for_each_field(Visit&& visit) {                   \
    using Self = Struct;                                        \
    FIELDS(PERFSAGE_FIELD_VISIT)                                \
  }
