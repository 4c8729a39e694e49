export { JobVm, encodeNotice, type ExitNotice, type VmAnswer, type VmEffect, type VmStanding, type VmState, type VmTask } from './job-vm.ts';
