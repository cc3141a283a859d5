// The whole library: #include <fasteners/fasteners.hpp>
#pragma once

#include <fasteners/interprocess_lock.hpp>
#include <fasteners/interprocess_locked.hpp>
#include <fasteners/locked.hpp>
#include <fasteners/reader_writer_lock.hpp>
#include <fasteners/synchronized.hpp>
#include <fasteners/try_lock.hpp>
#include <fasteners/version.hpp>
