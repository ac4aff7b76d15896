/* tests/unit/near.h - checks on doubles for the unit tests (cmocka's
 * fail_msg reports a miss). */
#ifndef FLEETSYNC_TESTS_UNIT_NEAR_H
#define FLEETSYNC_TESTS_UNIT_NEAR_H

#include "core/geo.h"

#include <math.h>

/* Kilometres in a degree of latitude on the sphere core/geo.h measures on. */
#define KM_PER_DEG (GEO_EARTH_RADIUS_M * M_PI / 180.0 / 1000.0)

/* Fails the test unless actual is within tol of expected; the message names
 * the expression and both values. */
#define assert_near(actual, expected, tol)                                                                             \
    do {                                                                                                               \
        double a_ = (actual), e_ = (expected);                                                                         \
        if (!(fabs(a_ - e_) <= (tol)))                                                                                 \
            fail_msg("%s = %.9f, expected %.9f +- %g", #actual, a_, e_, (double)(tol));                                \
    } while (0)

#endif
