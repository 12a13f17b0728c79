# The layer rules of docs/architecture.md, enforced by the build.
#
# Each directory of src/ may include the project headers of the directories listed for it, and only
# those; third-party headers that carry a layer's dependency (MPI, NCCL, HDF5, TOML, CLI11, the full
# LibTorch API) may be included only where listed. Two mechanisms make a violation a build error:
#  1. link scopes: MPI and Boost.MPI are PRIVATE to universae_parallel and HDF5 to universae_io, so
#     their headers are not even on the include path of any other target;
#  2. universae_check_layers(): before a library compiles, cmake/CheckLayer.cmake reads the
#     #include lines of its sources and headers and fails the build on a forbidden one, naming the
#     file, the line and the rule.
# This file is read by both: src/CMakeLists.txt and the check script.

set(UNIVERSAE_LAYERS core config parallel io data lm compare train sweep app)

# Project directories each directory may include.
set(UNIVERSAE_LAYER_core     core)
set(UNIVERSAE_LAYER_config   config core)
set(UNIVERSAE_LAYER_parallel parallel core)
set(UNIVERSAE_LAYER_io       io parallel core)
set(UNIVERSAE_LAYER_data     data io parallel core config)
set(UNIVERSAE_LAYER_lm       lm data io parallel core config)
set(UNIVERSAE_LAYER_compare  compare data io parallel core config)
set(UNIVERSAE_LAYER_train    train compare lm data io parallel core config)
set(UNIVERSAE_LAYER_sweep    sweep train compare lm data io parallel core config)
set(UNIVERSAE_LAYER_app      app sweep train compare lm data io parallel core config)

# Third-party headers (a regular expression on the <...> name) and the directories allowed to use
# them. HDF5 is allowed in io's .cpp files only: no public header may expose it (nor MPI or NCCL).
set(UNIVERSAE_EXTERNAL_RULES
  "^(mpi|nccl|cuda_runtime|cuda)\\.h$|^boost/mpi" "parallel"
  "^hdf5\\.h$"                                    "io-sources"
  "^torch/torch\\.h$"                             "core,train,lm"
  "^toml\\+\\+/"                                  "config,compare"
  "^CLI/"                                         "app")

# universae_check_layers(TARGET): the check above over TARGET's sources and the headers beside them,
# run before TARGET compiles (a broken rule fails the build, naming the file and the rule).
function(universae_check_layers target)
  get_target_property(sources ${target} SOURCES)
  get_target_property(source_dir ${target} SOURCE_DIR)
  set(files "")
  set(dirs "")
  foreach(s IN LISTS sources)
    if(NOT IS_ABSOLUTE "${s}")
      set(s "${source_dir}/${s}")
    endif()
    if(s MATCHES "^${PROJECT_SOURCE_DIR}/src/")
      list(APPEND files "${s}")
      get_filename_component(d "${s}" DIRECTORY)
      list(APPEND dirs "${d}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES dirs)
  foreach(d IN LISTS dirs)
    file(GLOB headers CONFIGURE_DEPENDS "${d}/*.hpp")
    list(APPEND files ${headers})
  endforeach()
  list(REMOVE_DUPLICATES files)
  set(list_file "${CMAKE_CURRENT_BINARY_DIR}/${target}.layer_files")
  string(REPLACE ";" "\n" lines "${files}")
  file(WRITE "${list_file}" "${lines}\n")
  set(stamp "${CMAKE_CURRENT_BINARY_DIR}/${target}.layers_ok")
  add_custom_command(OUTPUT "${stamp}"
    COMMAND ${CMAKE_COMMAND} -DLIST=${list_file} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}/src -DSTAMP=${stamp}
            -P ${PROJECT_SOURCE_DIR}/cmake/CheckLayer.cmake
    DEPENDS ${files} "${list_file}" ${PROJECT_SOURCE_DIR}/cmake/CheckLayer.cmake ${PROJECT_SOURCE_DIR}/cmake/UniversaeLayers.cmake
    COMMENT "Checking the layer rules of ${target}"
    VERBATIM)
  add_custom_target(${target}_layers DEPENDS "${stamp}")
  add_dependencies(${target} ${target}_layers)
endfunction()
