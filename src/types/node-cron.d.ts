// The part of node-cron 3 biha uses (the package ships no type declarations).
declare module 'node-cron' {
  export interface ScheduledTask {
    start(): void;
    stop(): void;
  }
  export interface ScheduleOptions {
    scheduled?: boolean;
    timezone?: string;
    recoverMissedExecutions?: boolean;
    /** Tasks are kept in a process-wide map by name: a fixed name replaces the previous task. */
    name?: string;
  }
  export function schedule(expression: string, func: (now: Date | 'manual' | 'init') => void, options?: ScheduleOptions): ScheduledTask;
  export function validate(expression: string): boolean;
  const cron: { schedule: typeof schedule; validate: typeof validate };
  export default cron;
}
