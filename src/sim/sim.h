/*
 * sim.h - "fleetsync sim": the truck fleet simulator.
 */
#ifndef FS_SIM_SIM_H
#define FS_SIM_SIM_H

int cmd_sim(int argc, char **argv);

#endif
