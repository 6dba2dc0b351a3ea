# keel_layer(NAME SOURCES ... [DEPS lower layers ...] [EXTERNAL imported targets ...])
#
# Defines, for one layer of the design:
#   keel_NAME_obj        the layer's objects (position independent)
#   keel_NAME            a static library for programs and tests inside the tree
#   keel_NAME_layercheck a shared object linked with -Wl,--no-undefined against
#                        the lower layers only: a reference to a higher layer
#                        is an undefined symbol and fails the build.
function(keel_layer name)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS;EXTERNAL" ${ARGN})
  add_library(keel_${name}_obj OBJECT ${L_SOURCES})
  set_target_properties(keel_${name}_obj PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_include_directories(keel_${name}_obj PUBLIC ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(keel_${name}_obj PUBLIC ${L_EXTERNAL})

  add_library(keel_${name} STATIC $<TARGET_OBJECTS:keel_${name}_obj>)
  target_include_directories(keel_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include)
  set(static_deps)
  set(check_deps)
  foreach(d ${L_DEPS})
    list(APPEND static_deps keel_${d})
    list(APPEND check_deps keel_${d}_layercheck)
  endforeach()
  target_link_libraries(keel_${name} PUBLIC ${static_deps} ${L_EXTERNAL} Threads::Threads)

  # Sanitizer runtimes leave undefined symbols in shared objects, so the
  # layering check runs in ordinary builds only.
  if(NOT KEEL_SANITIZE AND NOT KEEL_TSAN)
    add_library(keel_${name}_layercheck SHARED $<TARGET_OBJECTS:keel_${name}_obj>)
    target_link_libraries(keel_${name}_layercheck PRIVATE ${check_deps} ${L_EXTERNAL}
                          Threads::Threads)
    target_link_options(keel_${name}_layercheck PRIVATE -Wl,--no-undefined)
  endif()

  set_property(GLOBAL APPEND PROPERTY KEEL_LAYER_OBJECTS $<TARGET_OBJECTS:keel_${name}_obj>)
  set_property(GLOBAL APPEND PROPERTY KEEL_LAYER_EXTERNAL_DEPS ${L_EXTERNAL} Threads::Threads)
endfunction()
