export { statsServer, segmentEntries, type ConnectionFigures, type SideFigures, type StatsOptions } from './server';
